import assert from "node:assert/strict";
import { type SpawnDeps, spawnService } from "../../src/children/spawn_flow.ts";
import type { Launcher } from "../../src/launchers/launcher.ts";
import type { ServiceRecord, ServiceState } from "../../src/types/mod.ts";

Deno.test("spawnService() counts a new spawn as under way from its LAUNCHING record on, while the launcher still prepares (a long image copy)", async () => {
  const events: string[] = [];
  const states = new Map<string, ServiceState>();
  let releasePrepare = (): void => {};
  const launcher = {
    url: "ssh://slowhost",
    prepare: () => {
      events.push("prepare");
      return new Promise((_, reject) => {
        releasePrepare = () => reject(new Error("copy cut"));
      });
    },
    launch: () => Promise.reject(new Error("not reached")),
  } as unknown as Launcher;
  const registry = {
    put: (record: ServiceRecord) => {
      events.push(`put ${record.state}`);
      states.set(record.id, record.state);
      return Promise.resolve(record);
    },
    transition: (id: string, change: { to: ServiceState }) => {
      events.push(`transition ${change.to}`);
      states.set(id, change.to);
      return Promise.resolve({});
    },
  };
  const deps = {
    registry,
    self: { id: "spw-parent01", url: "http://127.0.0.1:1", route: ["spw-parent01"] },
    launcher,
    onRecorded: ({ id }: { id: string }) => events.push(`recorded ${states.get(id)}`),
  } as unknown as SpawnDeps;
  const spawning = spawnService(
    { role: "spawner", on: "ssh://slowhost", options: {}, sessions: [] } as never,
    deps,
  );
  // The launcher is still preparing: the spawn is already reported as under way.
  while (!events.includes("prepare")) await new Promise((r) => setTimeout(r, 1));
  assert.deepEqual(events, ["put LAUNCHING", "recorded LAUNCHING", "prepare"]);
  releasePrepare();
  await assert.rejects(spawning, /cannot prepare ssh:\/\/slowhost: copy cut/);
  assert.deepEqual(events.slice(3), ["transition FAILED"]);
});
