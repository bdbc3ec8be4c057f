/**
 * `task-throughput`: null tasks (`/bin/true`) per second through queue ->
 * agent with 2 core slots -> pub/sub, on a local fabric, against the rate at
 * which this machine runs `/bin/true` one after the other from Deno (the
 * process-start floor an agent cannot beat per slot).
 *
 * The window runs from the first event of the first task to the DONE of the
 * last one, as the subscriber receives them; every task must reach DONE (or
 * FAILED) on pub/sub to be counted. The queue is filled before the agent
 * starts, so the producer's rate and the agent's start-up are left out.
 * @module
 */
import { withBenchFabric } from "./_local_fabric.ts";
import type { TaskEvent } from "../../src/services/agent/task.ts";
import { PubsubClient } from "../../src/client/pubsub_client.ts";
import { QueueClient } from "../../src/client/queue_client.ts";
import type { SpawnResult } from "../../src/types/mod.ts";
import {
  type Benchmark,
  type BenchResult,
  clockTicksPerSecond,
  envNumber,
  machineBusySeconds,
  round,
  say,
} from "./_harness.ts";

const NAME = "task-throughput";
const SLOTS = 2;

/**
 * The `task-throughput` benchmark; `BENCH_RUNS` overrides the 1,000 tasks,
 * `BENCH_PREFETCH` the agent's `prefetch` option (default: its own).
 */
export const taskThroughput: Benchmark = {
  name: NAME,
  description: "null tasks per second through queue -> agent (2 slots) -> pub/sub (goal >= 300/s)",
  run,
};

async function run(): Promise<BenchResult> {
  const count = Math.round(envNumber("BENCH_RUNS", 1000));
  const ticks = await clockTicksPerSecond();
  return await withBenchFabric("tasks", 2000, async (local) => {
    const spawn = (body: Record<string, unknown>) =>
      local.client.call<SpawnResult>(local.spawner, { method: "POST", path: "/v1/spawn", body }, {
        timeoutMs: 60_000,
      });
    const queue = await spawn({ role: "queue", options: { capacity: String(count + 10) } });
    const pubsub = await spawn({ role: "pubsub", options: { buffer: String(count * 4) } });
    const tasks = new QueueClient(local.client, { id: queue.id, url: queue.endpoint });
    const events = await new PubsubClient(local.keys, { id: pubsub.id, url: pubsub.endpoint })
      .subscribe(["tasks.>"], { buffer: count * 4 });
    const puts = performance.now();
    await Promise.all(
      Array.from({ length: 8 }, async (_, worker) => {
        for (let i = worker; i < count; i += 8) {
          await tasks.put("tasks", { id: `b-${i}`, executable: "/bin/true" });
        }
      }),
    );
    const putMs = performance.now() - puts;
    say(NAME, `${count} tasks queued in ${round(putMs)} ms; starting an agent with ${SLOTS} slots`);
    const prefetch = Deno.env.get("BENCH_PREFETCH");
    const agent = await spawn({
      role: "agent",
      options: {
        queue: queue.id,
        pubsub: pubsub.id,
        cores: String(SLOTS),
        ...(prefetch === undefined ? {} : { prefetch }),
      },
    });
    const pids = await pidsOf(local.registry, {
      queue: queue.id,
      pubsub: pubsub.id,
      agent: agent.id,
    });
    const cpu0 = cpuOf(pids, ticks);
    const busy0 = machineBusySeconds(ticks);
    let start = 0;
    let done = 0;
    let failed = 0;
    const deadline = setTimeout(() => void events.close(), 300_000);
    for await (const frame of events) {
      if (frame.op !== "message") continue;
      start ||= performance.now();
      const state = (frame.message as TaskEvent).state;
      if (state === "DONE") done++;
      else if (state === "FAILED" || state === "CANCELED") failed++;
      if (done + failed >= count) break;
    }
    clearTimeout(deadline);
    const ms = performance.now() - start;
    const cpu = cpuOf(pids, ticks);
    const busy = machineBusySeconds(ticks) - busy0;
    await events.close();
    const rate = done / (ms / 1000);
    const floor = await bareRate(200);
    const bareMs = 1000 / floor;
    const perTaskMs = 1000 / rate;
    const cpuMsPerTask = (role: string): number =>
      round(((cpu[role] ?? 0) - (cpu0[role] ?? 0)) * 1000 / Math.max(1, done), 3);
    const childMs = round(
      ((cpu["agent children"] ?? 0) - (cpu0["agent children"] ?? 0)) * 1000 / Math.max(1, done),
      3,
    );
    say(NAME, `${done} DONE, ${failed} failed in ${round(ms)} ms: ${round(rate)} tasks/s`);
    say(NAME, `bare /bin/true from Deno, one after the other: ${round(floor)} /s`);
    say(
      NAME,
      `launch cost per task: ${round(perTaskMs, 3)} ms wall (${
        round(perTaskMs * SLOTS, 3)
      } ms of a slot); bare spawn ${round(bareMs, 3)} ms; overhead ${
        round(perTaskMs - bareMs, 3)
      } ms per task over the bare spawn`,
    );
    say(
      NAME,
      `CPU per task: agent ${cpuMsPerTask("agent")} ms (+ ${childMs} ms in /bin/true), queue ${
        cpuMsPerTask("queue")
      } ms, pubsub ${cpuMsPerTask("pubsub")} ms, subscriber ${
        cpuMsPerTask("bench")
      } ms; machine busy ${round(busy * 1000 / Math.max(1, done), 3)} ms`,
    );
    say(NAME, "anchors: RADICAL-Pilot over 100 tasks/s; 930-1,500 tasks/s with Flux or Dragon");
    return {
      name: NAME,
      value: round(rate),
      baseline: round(floor),
      ratio: round(rate / floor, 3),
      unit: "tasks/s",
      goal: "value >= 300 tasks/s",
      goal_met: rate >= 300,
      tasks: count,
      done,
      failed,
      launch_cost_ms_per_task: round(perTaskMs, 3),
      slot_ms_per_task: round(perTaskMs * SLOTS, 3),
      bare_spawn_ms: round(bareMs, 3),
      overhead_ms_per_task: round(perTaskMs - bareMs, 3),
      cpu_ms_per_task: {
        agent: cpuMsPerTask("agent"),
        tasks: childMs,
        queue: cpuMsPerTask("queue"),
        pubsub: cpuMsPerTask("pubsub"),
        subscriber: cpuMsPerTask("bench"),
        machine: round(busy * 1000 / Math.max(1, done), 3),
      },
      queue_fill_ms: round(putMs),
      slots: SLOTS,
    };
  });
}

async function bareRate(n: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < n; i++) await new Deno.Command("/bin/true").output();
  return n / ((performance.now() - start) / 1000);
}

/** The pids of the services named by ID, and this process as "bench". */
async function pidsOf(
  registry: { list(): Promise<{ id: string; pid: number }[]> },
  ids: Record<string, string>,
): Promise<Record<string, number>> {
  const records = await registry.list();
  const pids: Record<string, number> = { bench: Deno.pid };
  for (const [role, id] of Object.entries(ids)) {
    const pid = records.find((r) => r.id === id)?.pid;
    if (pid) pids[role] = pid;
  }
  return pids;
}

/**
 * CPU seconds used so far by each process, and by the agent's reaped children
 * (`cutime + cstime` of `/proc/PID/stat`) as "agent children".
 */
function cpuOf(pids: Record<string, number>, ticks: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [role, pid] of Object.entries(pids)) {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
      out[role] = ((fields[11] ?? 0) + (fields[12] ?? 0)) / ticks;
      if (role === "agent") out["agent children"] = ((fields[13] ?? 0) + (fields[14] ?? 0)) / ticks;
    } catch {
      // Gone: no number.
    }
  }
  return out;
}
