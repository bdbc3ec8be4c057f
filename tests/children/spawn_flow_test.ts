import assert from "node:assert/strict";
import { type SpawnDeps, spawnService } from "../../src/children/spawn_flow.ts";
import type { Launcher } from "../../src/launchers/launcher.ts";
import type { ServiceRecord, ServiceState } from "../../src/types/mod.ts";
import { EXIT } from "../../src/types/mod.ts";
import { SpawnFailedError } from "../../src/types/errors.ts";
import { explainSshFailure, SshError, sshUnreachable } from "../../src/launchers/ssh_failure.ts";

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

Deno.test("spawnService() fails with 69 when an ssh host cannot be reached, not when it refuses the login", async () => {
  const exitOf = async (error: Error): Promise<number | null> => {
    const launcher = {
      url: "ssh://somehost",
      prepare: () => Promise.reject(error),
      launch: () => Promise.reject(new Error("not reached")),
    } as unknown as Launcher;
    const deps = {
      registry: { put: (r: ServiceRecord) => Promise.resolve(r), transition: () => ({}) },
      self: { id: "spw-parent01", url: "http://127.0.0.1:1", route: ["spw-parent01"] },
      launcher,
    } as unknown as SpawnDeps;
    const failed = await spawnService(
      { role: "spawner", on: "ssh://somehost", options: {}, sessions: [] } as never,
      deps,
    ).then(() => null, (e: unknown) => e);
    assert.ok(failed instanceof SpawnFailedError, String(failed));
    return failed.childExitCode;
  };
  const down = (stderr: string) =>
    new SshError(explainSshFailure("somehost", stderr), { unreachable: sshUnreachable(stderr) });
  assert.equal(
    await exitOf(down("ssh: Could not resolve hostname nosuchhost: Name or service not known")),
    EXIT.UNREACHABLE,
  );
  assert.equal(
    await exitOf(down("ssh: connect to host 198.19.1.2 port 22: No route to host")),
    EXIT.UNREACHABLE,
  );
  assert.equal(await exitOf(down("connect to host h port 22: Connection refused")), 69);
  assert.equal(await exitOf(new SshError("no answer", { unreachable: true })), 69);
  assert.equal(await exitOf(down("root@somehost: Permission denied (publickey).")), null);
  assert.equal(await exitOf(down("Host key verification failed.")), null);
  assert.equal(await exitOf(new Error("copy cut")), null);
});
