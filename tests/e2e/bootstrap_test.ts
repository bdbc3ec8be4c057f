import assert from "node:assert/strict";
import { join } from "node:path";
import { eventually } from "../_eventually.ts";
import { createApp } from "../../src/api/app.ts";
import type { ServiceHandlers } from "../../src/api/service_handlers.ts";
import { SpawnFailedError } from "../../src/types/errors.ts";
import { ReplayCache } from "../../src/crypto/mod.ts";
import { LocalLauncher } from "../../src/launchers/local.ts";
import type { Launcher } from "../../src/launchers/launcher.ts";
import { KeyHandover } from "../../src/bootstrap/handover.ts";
import { spawnService } from "../../src/children/spawn_flow.ts";
import type { ServiceStatus, SpawnResult } from "../../src/types/mod.ts";
import type { LocalFabric } from "../../src/cli/local_fabric.ts";
import { withLocalFabric } from "./_fabric.ts";

Deno.test("spawn bootstraps a real process that the registry shows ALIVE with its history", async () => {
  await withLocalFabric(async (local) => {
    const result = await local.client.call<SpawnResult>(local.spawner, {
      method: "POST",
      path: "/v1/spawn",
      body: { role: "spawner", sessions: ["s1"] },
    });
    assert.equal(result.state, "ALIVE");
    const found = await local.registry.get(result.id);
    assert.ok(found);
    assert.equal(found.record.state, "ALIVE");
    assert.equal(found.record.parent, local.spawner.id);
    assert.deepEqual(found.record.route, [local.spawner.id, result.id]);
    assert.deepEqual(found.record.sessions, ["s1"]);
    assert.ok(found.record.pid > 0 && found.record.pid !== Deno.pid);
    assert.deepEqual(found.transitions.map((t) => t.to), [
      "LAUNCHING",
      "BOOTSTRAPPING",
      "CONFIGURING",
      "ALIVE",
    ]);
    // The child answers signed requests with signed answers: it holds the keys.
    const status = await local.client.call<ServiceStatus>({ id: result.id, url: result.endpoint }, {
      method: "GET",
      path: "/v1/status",
    });
    assert.equal(status.id, result.id);
    // And it heartbeats.
    const before = found.record.lastHeartbeat;
    await eventually(
      async () => (await local.registry.get(result.id))!.record.lastHeartbeat > before,
      {
        what: "a heartbeat after the one on record",
      },
    );
  });
});

/** A parent that only answers bootstraps, in this process, with its own handover. */
async function withParent(
  local: LocalFabric,
  fn: (parent: { url: string; handover: KeyHandover }) => Promise<void>,
): Promise<void> {
  let handover: KeyHandover | null = null;
  const app = createApp({
    serviceId: "spw-parent00",
    keys: () => local.keys,
    replayCache: new ReplayCache(),
    handlers: { bootstrap: (r, source) => handover!.answer(r, source) } as ServiceHandlers,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  const url = `http://127.0.0.1:${server.addr.port}`;
  handover = new KeyHandover({
    keys: local.keys,
    registries: () => [local.registryTarget],
    self: { id: "spw-parent00", url },
  });
  try {
    await fn({ url, handover });
  } finally {
    await server.shutdown();
  }
}

function wrongPassword(inner: Launcher): Launcher {
  return {
    url: inner.url,
    prepare: (parentUrl, registries) => inner.prepare(parentUrl, registries),
    launch: (spec) => inner.launch({ ...spec, env: { ...spec.env, FABRIC_OTP: "d3Jvbmc" } }),
  };
}

async function expectFailedSpawn(
  local: LocalFabric,
  dir: string,
  parent: { url: string; handover: KeyHandover },
  launcher: Launcher,
): Promise<SpawnFailedError> {
  try {
    await spawnService({ role: "spawner", on: "local://", sessions: [], options: {} }, {
      keys: local.keys,
      client: local.client,
      registry: local.registry,
      handover: parent.handover,
      self: { id: "spw-parent00", url: parent.url, route: ["spw-parent00"] },
      dir,
      registries: [local.registryTarget],
      heartbeatMs: 500,
      launcher,
    });
  } catch (error) {
    assert.ok(error instanceof SpawnFailedError, String(error));
    return error;
  }
  assert.fail("spawn should have failed");
}

Deno.test("spawn fails with exit 77 and the password is discarded when the child's password is wrong", async () => {
  await withLocalFabric(async (local, dir) => {
    await withParent(local, async (parent) => {
      const launcher = wrongPassword(new LocalLauncher({ dir }));
      const error = await expectFailedSpawn(local, dir, parent, launcher);
      assert.equal(error.childExitCode, 77);
      assert.match(error.message, /refused/);
      assert.equal(parent.handover.hasPassword(error.serviceId), false);
      const found = await local.registry.get(error.serviceId);
      assert.equal(found?.record.state, "FAILED");
      assert.match(found?.record.lastFailure ?? "", /exit 77/);
    });
  });
});

Deno.test("spawn fails with exit 69 and the password is discarded when the parent is unreachable", async () => {
  await withLocalFabric(async (local, dir) => {
    await withParent(local, async (parent) => {
      const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const deadUrl = `http://127.0.0.1:${(closed.addr as Deno.NetAddr).port}`;
      closed.close();
      const error = await expectFailedSpawn(
        local,
        dir,
        { url: deadUrl, handover: parent.handover },
        new LocalLauncher({ dir }),
      );
      assert.equal(error.childExitCode, 69);
      assert.match(error.message, /could not reach its parent/);
      assert.equal(parent.handover.hasPassword(error.serviceId), false);
      const log = await Deno.readTextFile(join(dir, "logs", `${error.serviceId}.log`));
      assert.doesNotMatch(log, /FABRIC_OTP=|"password"/);
    });
  });
});
