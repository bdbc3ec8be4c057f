/**
 * Issue 18 ("Hold under chaos") on a local fabric of real processes: a
 * registry frozen for several TTLs declares nobody dead; a replaced agent
 * stops, tasks and all, within the bound; heartbeats sent before a death
 * never revive the dead instance.
 */
import assert from "node:assert/strict";
import type { LocalFabric } from "../../src/cli/local_fabric.ts";
import type { ServiceRecord, SpawnResult } from "../../src/types/mod.ts";
import { withLocalFabric } from "./_fabric.ts";
import { eventually } from "../_eventually.ts";

const HEARTBEAT_MS = 500; // TTL 1.5 s

async function spawn(
  local: LocalFabric,
  role: string,
  options: Record<string, string> = {},
): Promise<ServiceRecord> {
  const result = await local.client.call<SpawnResult>(local.spawner, {
    method: "POST",
    path: "/v1/spawn",
    body: { role, options },
  });
  return (await local.registry.get(result.id))!.record;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test("a registry frozen with SIGSTOP for 3 TTLs declares no service DEAD when it resumes", async () => {
  await withLocalFabric(async (local) => {
    const services = [await spawn(local, "spawner"), await spawn(local, "spawner")];
    const registry = (await local.registry.list()).find((r) => r.role === "registry")!;
    const seqBefore = Math.max(
      ...(await Promise.all(
        (await local.registry.list()).map(async (r) =>
          Math.max(0, ...(await local.registry.get(r.id))!.transitions.map((t) => t.seq))
        ),
      )),
    );
    Deno.kill(registry.pid, "SIGSTOP");
    try {
      // Frozen for three TTLs: the scenario, not a wait for a condition.
      await sleep(3 * 3 * HEARTBEAT_MS);
    } finally {
      Deno.kill(registry.pid, "SIGCONT");
    }
    // Well past a full TTL of grace after the resume.
    await sleep(4 * 3 * HEARTBEAT_MS);
    const all = await local.registry.list();
    for (const record of all) {
      const after = (await local.registry.get(record.id))!.transitions.filter((t) =>
        t.seq > seqBefore
      );
      assert.ok(
        !after.some((t) => t.to === "DEAD"),
        `${record.id} was declared DEAD: ${JSON.stringify(after)}`,
      );
      assert.equal(record.state, "ALIVE", record.id);
      assert.equal(record.incarnation, 1, `${record.id} was not restarted`);
    }
    assert.ok(services.every((s) => all.some((r) => r.id === s.id)));
  }, { heartbeatMs: HEARTBEAT_MS });
});

function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}

Deno.test("a replaced agent stops with its tasks (SIGTERM ignored, so SIGKILL) less than 3 s after it wakes", async () => {
  await withLocalFabric(async (local, dir) => {
    const queueService = await spawn(local, "queue");
    const pubsubService = await spawn(local, "pubsub");
    const agent = await spawn(local, "agent", {
      queue: queueService.id,
      pubsub: pubsubService.id,
      cores: "1",
    });
    const pidFile = `${dir}/task-pids`;
    await local.client.call(
      { id: queueService.id, url: queueService.endpoint },
      {
        method: "POST",
        path: "/v1/queue/tasks/messages",
        body: {
          payload: {
            id: "tsk-stubborn",
            executable: "/bin/sh",
            args: ["-c", `trap '' TERM; echo $$ >> ${pidFile}; while :; do sleep 0.2; done`],
          },
        },
      },
    );
    const pids = async (): Promise<number[]> =>
      (await Deno.readTextFile(pidFile).catch(() => "")).split("\n").filter(Boolean).map(Number);
    try {
      const [taskPid] = await eventually(async () => {
        const found = await pids();
        return found.length > 0 ? found : undefined;
      }, { timeoutMs: 20_000 });
      Deno.kill(agent.pid, "SIGSTOP");
      let woke = 0;
      try {
        await eventually(async () => {
          const r = (await local.registry.get(agent.id))!.record;
          return r.incarnation === 2 && r.state === "ALIVE" ? r : undefined;
        }, { timeoutMs: 30_000 });
      } finally {
        woke = Date.now();
        Deno.kill(agent.pid, "SIGCONT");
      }
      await eventually(
        () => !running(agent.pid) && !running(taskPid!),
        { timeoutMs: 20_000 },
      );
      const overlap = Date.now() - woke;
      assert.ok(overlap < 3000, `the replaced agent and its task lived on for ${overlap} ms`);
      const now = (await local.registry.get(agent.id))!.record;
      assert.equal(now.incarnation, 2);
      assert.equal(now.state, "ALIVE");
    } finally {
      for (const pid of await pids()) {
        try {
          Deno.kill(-pid, "SIGKILL");
        } catch {
          // Gone already.
        }
      }
    }
  }, { heartbeatMs: HEARTBEAT_MS });
});
