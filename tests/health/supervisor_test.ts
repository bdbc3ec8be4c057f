import assert from "node:assert/strict";
import { FabricRequestError } from "../../src/client/fabric_client.ts";
import type { RegistryClient } from "../../src/client/registry_client.ts";
import { Supervisor } from "../../src/health/supervisor.ts";
import type { ServiceRecord, ServiceState } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";

/** A registry that cannot be reached for its first `outage` calls. */
function flakyRegistry(record: ServiceRecord, outage: number) {
  let calls = 0;
  const transitions: { to: ServiceState; exited?: boolean | undefined }[] = [];
  const reach = (): void => {
    if (calls++ < outage) throw new FabricRequestError("connection refused", 0);
  };
  const registry = {
    get: (_id: string) => {
      try {
        reach();
        return Promise.resolve({ record: structuredClone(record), transitions: [] });
      } catch (error) {
        return Promise.reject(error);
      }
    },
    transition: (
      _id: string,
      change: { incarnation: number; to: ServiceState; reason: string; exited?: boolean },
    ) => {
      try {
        reach();
      } catch (error) {
        return Promise.reject(error);
      }
      transitions.push({ to: change.to, exited: change.exited });
      record.state = change.to;
      record.exited = change.exited;
      return Promise.resolve(structuredClone(record));
    },
  };
  return { registry: registry as unknown as RegistryClient, transitions };
}

Deno.test("Supervisor.childExited() retries the exit report until the registry has it, then restarts the child", async () => {
  const child = serviceRecord("spw-child001", { parent: "spw-parent01" });
  const { registry, transitions } = flakyRegistry(child, 4);
  const restarted: string[] = [];
  const supervisor = new Supervisor({
    selfId: "spw-parent01",
    registry: () => registry,
    restart: (id) => {
      restarted.push(id);
      return Promise.resolve();
    },
    replace: () => Promise.reject(new Error("not expected")),
    policyOf: () => "fresh",
  }, { backoffMs: 10, reportRetryMs: 40 });
  try {
    await supervisor.childExited({ id: child.id, incarnation: 1 }, { code: 137 });
    assert.deepEqual(transitions, [{ to: "DEAD", exited: true }]);
    const deadline = Date.now() + 10_000;
    while (restarted.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(restarted, [child.id]);
  } finally {
    supervisor.stop();
  }
});
