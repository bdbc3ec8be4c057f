import assert from "node:assert/strict";
import {
  type FabricClient,
  FabricRequestError,
  type Target,
} from "../../src/client/fabric_client.ts";
import { stopServices } from "../../src/cli/stop_services.ts";
import { serviceRecord } from "../_fixtures.ts";
import { fakeRegistry } from "../_fake_registry.ts";

/**
 * A spawner with a DEAD child that it restarts the moment it is asked to
 * stop: the child comes up after the stop chose what to stop.
 */
function restartingParent() {
  const registry = fakeRegistry([
    serviceRecord("spw-0000000a", { endpoint: "http://127.0.0.1:9" }),
    serviceRecord("agt-0000000b", {
      role: "agent",
      state: "DEAD",
      parent: "spw-0000000a",
      route: ["spw-0000000a", "agt-0000000b"],
      endpoint: "http://127.0.0.1:10",
    }),
  ]);
  const stopAsked: string[] = [];
  const client = {
    call(target: Target, request: { method: string; path: string }): Promise<unknown> {
      if (request.path !== "/v1/stop") return Promise.reject(new Error("gone"));
      stopAsked.push(target.id);
      const record = registry.records.get(target.id)!;
      record.state = "STOPPED";
      if (target.id === "spw-0000000a") {
        const child = registry.records.get("agt-0000000b")!;
        Object.assign(child, { state: "ALIVE", incarnation: 2 });
      }
      return Promise.resolve({});
    },
  } as unknown as FabricClient;
  return { registry, client, stopAsked };
}

Deno.test("stopServices() with `under` stops a child restarted below a named service during the stop", async () => {
  const { registry, client, stopAsked } = restartingParent();
  await stopServices(client, registry.client, { reason: "test", under: ["spw-0000000a"] });
  assert.deepEqual(stopAsked, ["spw-0000000a", "agt-0000000b"]);
  assert.equal(registry.records.get("agt-0000000b")!.state, "STOPPED");
});

Deno.test("stopServices() with `ids` stops exactly those, whatever comes up below them", async () => {
  const { registry, client, stopAsked } = restartingParent();
  await stopServices(client, registry.client, { reason: "test", ids: ["spw-0000000a"] });
  assert.deepEqual(stopAsked, ["spw-0000000a"]);
  assert.equal(registry.records.get("agt-0000000b")!.state, "ALIVE");
});

Deno.test("stopServices() reports a service that refuses its stop (4xx) once and does not ask it again", async () => {
  const registry = fakeRegistry([serviceRecord("spw-0000000a")]);
  let asks = 0;
  const client = {
    call(_target: Target, request: { path: string }): Promise<unknown> {
      if (request.path !== "/v1/stop") return Promise.reject(new Error("gone"));
      asks++;
      return Promise.reject(new FabricRequestError('Invalid field "graceMs"', 400));
    },
  } as unknown as FabricClient;
  const refused: string[] = [];
  const stopped = await stopServices(client, registry.client, {
    reason: "test",
    ids: ["spw-0000000a"],
    onRefused: (record, message) => refused.push(`${record.id}: ${message}`),
  });
  assert.equal(stopped, 0);
  assert.equal(asks, 1, "a refusal is not asked again for 30 s");
  assert.deepEqual(refused, ['spw-0000000a: Invalid field "graceMs"']);
});

Deno.test("stopServices() records a named DEAD service STOPPED, so its parent does not restart it", async () => {
  const registry = fakeRegistry([
    serviceRecord("spw-0000000a", { endpoint: "http://127.0.0.1:9" }),
    serviceRecord("agt-0000000b", {
      role: "agent",
      state: "DEAD",
      parent: "spw-0000000a",
      route: ["spw-0000000a", "agt-0000000b"],
    }),
  ]);
  const client = {
    call: () => Promise.reject(new Error("nothing runs to be asked")),
  } as unknown as FabricClient;
  const printed: string[] = [];
  const stopped = await stopServices(client, registry.client, {
    reason: "test",
    ids: ["agt-0000000b"],
    onStop: (record) => printed.push(record.id),
  });
  assert.equal(stopped, 1);
  assert.deepEqual(printed, ["agt-0000000b"]);
  assert.equal(registry.records.get("agt-0000000b")!.state, "STOPPED");
  assert.equal(registry.records.get("spw-0000000a")!.state, "ALIVE");
});
