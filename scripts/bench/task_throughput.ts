/**
 * `task-throughput`: null tasks (`/bin/true`) per second through queue ->
 * agent with 2 core slots -> pub/sub, on a local fabric, against the rate at
 * which this machine runs `/bin/true` one after the other from Deno (the
 * process-start floor an agent cannot beat per slot).
 * @module
 */
import { withBenchFabric } from "./_local_fabric.ts";
import type { TaskEvent } from "../../src/services/agent/task.ts";
import { PubsubClient } from "../../src/services/pubsub/pubsub_client.ts";
import { QueueClient } from "../../src/services/queue/queue_client.ts";
import type { SpawnResult } from "../../src/types/mod.ts";
import { type Benchmark, type BenchResult, envNumber, round, say } from "./_harness.ts";

const NAME = "task-throughput";

/** The `task-throughput` benchmark; `BENCH_RUNS` overrides the 1,000 tasks. */
export const taskThroughput: Benchmark = {
  name: NAME,
  description: "null tasks per second through queue -> agent (2 slots) -> pub/sub (goal >= 300/s)",
  run,
};

async function run(): Promise<BenchResult> {
  const count = Math.round(envNumber("BENCH_RUNS", 1000));
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
    // The queue is full before the agent exists: the agent's rate is measured,
    // from its first task to its last, not the producer's or its start-up.
    const puts = performance.now();
    await Promise.all(
      Array.from({ length: 8 }, async (_, worker) => {
        for (let i = worker; i < count; i += 8) {
          await tasks.put("tasks", { id: `b-${i}`, executable: "/bin/true" });
        }
      }),
    );
    const putMs = performance.now() - puts;
    say(NAME, `${count} tasks queued in ${round(putMs)} ms; starting an agent with 2 slots`);
    await spawn({ role: "agent", options: { queue: queue.id, pubsub: pubsub.id, cores: "2" } });
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
    await events.close();
    const rate = done / (ms / 1000);
    const floor = await bareRate(200);
    say(NAME, `${done} DONE, ${failed} failed in ${round(ms)} ms: ${round(rate)} tasks/s`);
    say(NAME, `bare /bin/true from Deno, one after the other: ${round(floor)} /s`);
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
      launch_cost_ms_per_task: round((ms * 2) / Math.max(1, done), 3),
      queue_fill_ms: round(putMs),
      slots: 2,
    };
  });
}

async function bareRate(n: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < n; i++) await new Deno.Command("/bin/true").output();
  return n / ((performance.now() - start) / 1000);
}
