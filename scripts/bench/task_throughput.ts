/**
 * `task-throughput`: null tasks (`/bin/true`) per second through queue ->
 * agent with 2 core slots -> pub/sub, on a local fabric, against the rate at
 * which this machine runs `/bin/true` one after the other from Deno (the
 * process-start floor an agent cannot beat per slot; measured just before and
 * just after that run, the mean is the baseline). Then the same with 4
 * agents of 2 slots each on one queue (`four_agents` in the RESULT), with the
 * share of one core the queue used: the queue is not the limit while that
 * share stays well below 1.
 *
 * The queue is filled before the agents start, so the producer's rate is
 * left out. The window runs from the moment every agent is up (its CPU time
 * read) to the last task's end as a subscriber receives it; the tasks that
 * ended before it opened are not counted, so the agents' start-up is left
 * out too. Every task must reach DONE (or FAILED) on pub/sub.
 * @module
 */
import { withBenchFabric } from "./_local_fabric.ts";
import type { TaskEvent } from "../../src/services/agent/task.ts";
import { PubsubClient } from "../../src/client/pubsub_client.ts";
import { QueueClient } from "../../src/client/queue_client.ts";
import type { LocalFabric } from "../../src/cli/local_fabric.ts";
import type { SpawnResult } from "../../src/types/mod.ts";
import {
  type Benchmark,
  type BenchResult,
  clockTicksPerSecond,
  envNumber,
  machineBusySeconds,
  round,
  say,
  sleep,
  waitQuiet,
} from "./_harness.ts";

const NAME = "task-throughput";
const SLOTS = 2;
/** Bare starts per measurement of the baseline. */
const BARE_STARTS = 300;
/** Agents of the second run, on the same queue service. */
const MANY = 4;

/**
 * The `task-throughput` benchmark; `BENCH_RUNS` overrides the 1,000 tasks
 * (of each run), `BENCH_PREFETCH` the agents' `prefetch` option (default:
 * their own).
 */
export const taskThroughput: Benchmark = {
  name: NAME,
  description:
    "null tasks per second through queue -> agent (2 slots) -> pub/sub, then 4 agents on one queue (ratio >= 0.75 of bare starts)",
  run,
};

/** The services one run uses. */
interface Services {
  local: LocalFabric;
  spawn(body: Record<string, unknown>): Promise<SpawnResult>;
  queue: SpawnResult;
  pubsub: SpawnResult;
  ticks: number;
  count: number;
}

/** What one run measured. */
interface RunResult {
  rate: number;
  done: number;
  failed: number;
  ms: number;
  putMs: number;
  /** CPU ms per DONE task by role; `tasks` is the agents' reaped children. */
  cpu: Record<string, number>;
  /** CPU seconds of the queue per second of the window: its share of one core. */
  queueBusy: number;
}

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
    const services: Services = { local, spawn, queue, pubsub, ticks, count };
    // The bare rate moves with the machine's load from minute to minute: it is
    // measured just before and just after the one-agent run, and the mean is the baseline.
    // The spawner refills its warm pool after those spawns: not beside the baseline.
    if (!await waitQuiet(ticks)) say(NAME, "the machine did not get quiet within 10 s");
    const before = await bareRate(BARE_STARTS);
    const one = await runAgents(services, 1, "tasks");
    const after = await bareRate(BARE_STARTS);
    const floor = (before + after) / 2;
    const beside = await bareRateBesideBusyCore(BARE_STARTS, ticks);
    const many = await runAgents(services, MANY, "tasks4");
    const bareMs = 1000 / floor;
    const perTaskMs = 1000 / one.rate;
    say(
      NAME,
      `bare /bin/true from Deno, one after the other: ${round(floor)} /s (${
        round(before)
      } before, ${round(after)} after the one-agent run)`,
    );
    say(
      NAME,
      `the same while a pure user-space loop keeps the other core busy: ${
        round(beside.rate)
      } /s; a start's CPU in the child ${
        round(beside.idleChildMs, 3)
      } ms with the other core idle, ${
        round(beside.busyChildMs, 3)
      } ms with it busy (one agent's ratio to that: ${round(one.rate / beside.rate, 3)})`,
    );
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
      `${MANY} agents (${MANY * SLOTS} slots) on one queue: ${round(many.rate)} tasks/s (ratio ${
        round(many.rate / floor, 3)
      }); the queue used ${round(many.queueBusy, 3)} of a core (1 agent: ${
        round(one.queueBusy, 3)
      })`,
    );
    say(NAME, "anchors: RADICAL-Pilot over 100 tasks/s; 930-1,500 tasks/s with Flux or Dragon");
    return {
      name: NAME,
      value: round(one.rate),
      baseline: round(floor),
      ratio: round(one.rate / floor, 3),
      unit: "tasks/s",
      goal: "ratio >= 0.75 of bare /bin/true starts from Deno",
      goal_met: one.rate / floor >= 0.75,
      baseline_before: round(before),
      baseline_after: round(after),
      bare_beside_busy_core: round(beside.rate),
      ratio_to_bare_beside_busy_core: round(one.rate / beside.rate, 3),
      bare_child_cpu_ms: {
        other_core_idle: round(beside.idleChildMs, 3),
        other_core_busy: round(beside.busyChildMs, 3),
      },
      tasks: count,
      done: one.done,
      failed: one.failed,
      launch_cost_ms_per_task: round(perTaskMs, 3),
      slot_ms_per_task: round(perTaskMs * SLOTS, 3),
      bare_spawn_ms: round(bareMs, 3),
      overhead_ms_per_task: round(perTaskMs - bareMs, 3),
      cpu_ms_per_task: one.cpu,
      queue_busy: round(one.queueBusy, 3),
      queue_fill_ms: round(one.putMs),
      slots: SLOTS,
      four_agents: {
        agents: MANY,
        slots: MANY * SLOTS,
        value: round(many.rate),
        ratio: round(many.rate / floor, 3),
        done: many.done,
        failed: many.failed,
        cpu_ms_per_task: many.cpu,
        queue_busy: round(many.queueBusy, 3),
      },
    };
  });
}

/**
 * Puts `count` null tasks on queue `queueName`, then starts `agents` agents
 * with {@linkcode SLOTS} slots each on it and times them until every task
 * ended, as a subscriber sees it.
 */
async function runAgents(s: Services, agents: number, queueName: string): Promise<RunResult> {
  const { count, ticks } = s;
  const tasks = new QueueClient(s.local.client, { id: s.queue.id, url: s.queue.endpoint });
  const events = await new PubsubClient(s.local.keys, { id: s.pubsub.id, url: s.pubsub.endpoint })
    .subscribe(["tasks.>"], { buffer: count * 4 });
  const puts = performance.now();
  await Promise.all(
    Array.from({ length: 8 }, async (_, worker) => {
      for (let i = worker; i < count; i += 8) {
        await tasks.put(queueName, { id: `b${agents}-${i}`, executable: "/bin/true" });
      }
    }),
  );
  const putMs = performance.now() - puts;
  say(
    NAME,
    `${count} tasks queued in ${round(putMs)} ms; starting ${agents} agent(s), ${SLOTS} slots each`,
  );
  const seen = { done: 0, failed: 0, last: 0 };
  const deadline = setTimeout(() => void events.close(), 300_000);
  const ended = (async () => {
    for await (const frame of events) {
      if (frame.op !== "message") continue;
      const state = (frame.message as TaskEvent).state;
      if (state === "DONE") seen.done++;
      else if (state === "FAILED" || state === "CANCELED") seen.failed++;
      seen.last = performance.now();
      if (seen.done + seen.failed >= count) break;
    }
    clearTimeout(deadline);
    await events.close();
  })();
  const prefetch = Deno.env.get("BENCH_PREFETCH");
  const ids: Record<string, string> = { queue: s.queue.id, pubsub: s.pubsub.id };
  // Started together, so that they begin about the same time.
  const started = await Promise.all(Array.from({ length: agents }, () =>
    s.spawn({
      role: "agent",
      options: {
        queue: s.queue.id,
        pubsub: s.pubsub.id,
        queueName,
        cores: String(SLOTS),
        ...(prefetch === undefined ? {} : { prefetch }),
      },
    })));
  started.forEach((agent, i) => ids[`agent${i}`] = agent.id);
  const pids = await pidsOf(s.local.registry, ids);
  const cpu0 = cpuOf(pids, ticks);
  const busy0 = machineBusySeconds(ticks);
  // Tasks that ended while the agents were still being started are left out.
  const start = performance.now();
  const early = seen.done;
  await ended;
  const ms = seen.last - start;
  const used = cpuOf(pids, ticks);
  const busy = machineBusySeconds(ticks) - busy0;
  const done = seen.done - early;
  const failed = seen.failed;
  const rate = done / (ms / 1000);
  const spent = (role: string): number => (used[role] ?? 0) - (cpu0[role] ?? 0);
  const perTask = (seconds: number): number => round(seconds * 1000 / Math.max(1, done), 3);
  const cpu = {
    agent: perTask(sumOf(used, "agent") - sumOf(cpu0, "agent")),
    tasks: perTask(sumOf(used, "children") - sumOf(cpu0, "children")),
    queue: perTask(spent("queue")),
    pubsub: perTask(spent("pubsub")),
    subscriber: perTask(spent("bench")),
    machine: perTask(busy),
  };
  say(
    NAME,
    `${done} DONE, ${failed} failed in ${round(ms)} ms: ${
      round(rate)
    } tasks/s (${early} DONE before every agent was up, not counted)`,
  );
  say(
    NAME,
    `CPU per task: agents ${cpu.agent} ms (+ ${cpu.tasks} ms in /bin/true), queue ${cpu.queue} ms, pubsub ${cpu.pubsub} ms, subscriber ${cpu.subscriber} ms; machine busy ${cpu.machine} ms`,
  );
  return { rate, done, failed, ms, putMs, cpu, queueBusy: spent("queue") / (ms / 1000) };
}

/** The sum of `cpu`'s agent roles (`agent0`, ...) or of their children. */
function sumOf(cpu: Record<string, number>, what: "agent" | "children"): number {
  let sum = 0;
  for (const [role, seconds] of Object.entries(cpu)) {
    const children = role.endsWith(" children");
    if (role.startsWith("agent") && children === (what === "children")) sum += seconds;
  }
  return sum;
}

async function bareRate(n: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < n; i++) await new Deno.Command("/bin/true").output();
  return n / ((performance.now() - start) / 1000);
}

/** What {@linkcode bareRateBesideBusyCore} measured. */
interface BesideBusyCore {
  /** Bare starts per second while the other core runs a user-space loop. */
  rate: number;
  /** CPU ms of one start in the child (`/bin/true`), the other core idle and busy. */
  idleChildMs: number;
  busyChildMs: number;
}

/**
 * The bare rate once more, while another process keeps the other core busy
 * with a loop that makes no system call, and the CPU one start costs in the
 * child either way. On this machine a process start costs much more CPU while
 * the other core runs anything (docs/performance.md, task-throughput): an
 * agent's tasks always start beside the agent's, queue's and pub/sub's own
 * work, and the idle baseline never does.
 */
async function bareRateBesideBusyCore(n: number, ticks: number): Promise<BesideBusyCore> {
  const childCpuMs = async (): Promise<{ rate: number; childMs: number }> => {
    const before = cpuTimes(Deno.pid, ticks).children;
    const rate = await bareRate(n);
    return { rate, childMs: (cpuTimes(Deno.pid, ticks).children - before) * 1000 / n };
  };
  const idle = await childCpuMs();
  const loop = new Deno.Command(Deno.execPath(), {
    args: ["eval", "for (;;) {}"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await sleep(500);
    const busy = await childCpuMs();
    return { rate: busy.rate, idleChildMs: idle.childMs, busyChildMs: busy.childMs };
  } finally {
    loop.kill("SIGKILL");
    await loop.status;
  }
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
 * CPU seconds used so far by each process, and by each agent's reaped
 * children as "ROLE children".
 */
function cpuOf(pids: Record<string, number>, ticks: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [role, pid] of Object.entries(pids)) {
    try {
      const times = cpuTimes(pid, ticks);
      out[role] = times.own;
      if (role.startsWith("agent")) out[`${role} children`] = times.children;
    } catch {
      // Gone: no number.
    }
  }
  return out;
}

/**
 * CPU seconds of process `pid` (`utime + stime` of `/proc/PID/stat`) and of
 * its reaped children (`cutime + cstime`).
 * @throws {Deno.errors.NotFound} when the process is gone.
 */
function cpuTimes(pid: number, ticks: number): { own: number; children: number } {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  return {
    own: ((fields[11] ?? 0) + (fields[12] ?? 0)) / ticks,
    children: ((fields[13] ?? 0) + (fields[14] ?? 0)) / ticks,
  };
}
