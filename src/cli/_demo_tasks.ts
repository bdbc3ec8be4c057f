/**
 * The task part of `fabricd demo`: a pilot manager, a queue and a pub/sub
 * service below it, two agents submitted as pilots, 100 small tasks through
 * them, and what came back.
 */
import type { LocalFabric } from "./local_fabric.ts";
import type { SpawnResult } from "../types/mod.ts";
import type { TaskEvent } from "../services/agent/task.ts";
import type { Pilot } from "../services/pilot_manager/pilots.ts";
import { PubsubClient } from "../client/pubsub_client.ts";
import { QueueClient } from "../client/queue_client.ts";
import { sleep } from "../config/retry.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";

/** Counts of a task run. */
export interface TaskRun {
  done: number;
  failed: number;
  ms: number;
  byAgent: Record<string, number>;
}

/** Where the demo's pilots run. */
export interface DemoTaskOptions {
  /** Launcher URL for the pilots. Default `local://`. */
  pilotsOn?: string;
}

/**
 * Grows a pilot manager with a queue and a pub/sub below it, submits two
 * pilots (agents with 2 cores, 1 on a batch system), runs `count` `/bin/true` tasks, and reports.
 * @throws {Error} when the pilots do not come up within 2 minutes.
 */
export async function runDemoTasks(
  local: LocalFabric,
  count: number,
  options: DemoTaskOptions = {},
): Promise<TaskRun> {
  const call = <T>(via: { id: string; url: string }, path: string, body?: unknown) =>
    local.client.call<T>(via, { method: body === undefined ? "GET" : "POST", path, body }, {
      timeoutMs: 60_000,
    });
  const manager = await call<SpawnResult>(local.spawner, "/v1/spawn", {
    role: "pilot-manager",
    options: { on: options.pilotsOn ?? "local://" },
  });
  const managerTarget = { id: manager.id, url: manager.endpoint };
  const queue = await call<SpawnResult>(managerTarget, "/v1/spawn", { role: "queue" });
  const pubsub = await call<SpawnResult>(managerTarget, "/v1/spawn", { role: "pubsub" });
  // One core per pilot on a batch system: both fit on the test cluster's
  // smallest node (2 CPUs) instead of one waiting for the other.
  const on = options.pilotsOn ?? "local://";
  const cores = on.startsWith("slurm://") ? 1 : 2;
  const submitted = await call<{ pilots: Pilot[] }>(managerTarget, "/v1/pilots", {
    count: 2,
    cores,
    walltime: "30",
    queue: queue.id,
    pubsub: pubsub.id,
  });
  const agents = submitted.pilots.map((p) => p.id);
  console.log(
    `pilot manager ${manager.id} with queue ${queue.id} and pub/sub ${pubsub.id}; ` +
      `pilots ${agents.join(", ")} on ${on} (${cores} cores each)`,
  );
  await pilotsRunning(() => call<{ pilots: Pilot[] }>(managerTarget, "/v1/pilots"), agents);
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

async function pilotsRunning(
  list: () => Promise<{ pilots: Pilot[] }>,
  ids: string[],
): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const { pilots } = await list();
    const mine = pilots.filter((p) => ids.includes(p.id));
    const failed = mine.find((p) => ["FAILED", "CANCELED", "ENDED"].includes(p.state));
    if (failed) throw new Error(`Pilot ${failed.id} is ${failed.state}: ${failed.reason}`);
    if (mine.every((p) => p.state === "RUNNING" && p.service === "ALIVE")) {
      console.log(
        mine.map((p) =>
          `${p.id} RUNNING${p.batch ? ` (job ${p.batch.jobId} on ${p.batch.nodes})` : ""}`
        ).join(", "),
      );
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `Pilots not running after 2 minutes: ${
          mine.map((p) => `${p.id} ${p.state} (${p.reason})`).join(", ")
        }`,
      );
    }
    await sleep(200);
  }
}
