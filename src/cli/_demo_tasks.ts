/**
 * The task part of `fabricd demo`: a queue, a pub/sub service and two agents,
 * 100 small tasks through them, and what came back.
 */
import type { LocalFabric } from "./local_fabric.ts";
import type { SpawnResult } from "../types/mod.ts";
import type { TaskEvent } from "../services/agent/task.ts";
import { PubsubClient } from "../services/pubsub/pubsub_client.ts";
import { QueueClient } from "../services/queue/queue_client.ts";

/** Counts of a task run. */
export interface TaskRun {
  done: number;
  failed: number;
  ms: number;
  byAgent: Record<string, number>;
}

/** Grows queue, pub/sub and two agents, runs `count` `/bin/true` tasks, and reports. */
export async function runDemoTasks(local: LocalFabric, count: number): Promise<TaskRun> {
  const spawn = (body: Record<string, unknown>) =>
    local.client.call<SpawnResult>(local.spawner, { method: "POST", path: "/v1/spawn", body }, {
      timeoutMs: 60_000,
    });
  const queue = await spawn({ role: "queue" });
  const pubsub = await spawn({ role: "pubsub" });
  const agents = [];
  for (let i = 0; i < 2; i++) {
    agents.push(
      await spawn({ role: "agent", options: { queue: queue.id, pubsub: pubsub.id, cores: "2" } }),
    );
  }
  console.log(
    `queue ${queue.id}, pub/sub ${pubsub.id}, agents ${
      agents.map((a) => a.id).join(", ")
    } (2 cores each)`,
  );
  const events = await new PubsubClient(local.keys, { id: pubsub.id, url: pubsub.endpoint })
    .subscribe(["tasks.>"], { buffer: count * 8 });
  const tasks = new QueueClient(local.client, { id: queue.id, url: queue.endpoint });
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    await tasks.put("tasks", { id: `demo-${i}`, executable: "/bin/true" });
  }
  const run: TaskRun = { done: 0, failed: 0, ms: 0, byAgent: {} };
  const deadline = setTimeout(() => void events.close(), 60_000);
  for await (const frame of events) {
    if (frame.op !== "message") continue;
    const event = frame.message as TaskEvent;
    if (event.state === "DONE") run.done++;
    else if (event.state === "FAILED" || event.state === "CANCELED") run.failed++;
    else continue;
    run.byAgent[event.agent] = (run.byAgent[event.agent] ?? 0) + 1;
    if (run.done + run.failed === count) break;
  }
  clearTimeout(deadline);
  run.ms = performance.now() - started;
  await events.close();
  return run;
}
