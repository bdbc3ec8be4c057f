/**
 * `spawn-fanout`: time until N spawners started at once through the root
 * spawner (`fabricd spawn --count N`'s `spawnMany`, at most `--parallel` under
 * way) are all ALIVE, against N bare `deno run`s of an empty script at the
 * same concurrency, for N = 1, 8, 32 and 64. One `RESULT` line per N; the
 * goal of issue 16 is a ratio within 2.
 * @module
 */
import { join } from "node:path";
import { initFabric } from "../../src/cli/init.ts";
import { type LocalFabric, startLocalFabric } from "../../src/cli/local_fabric.ts";
import { spawnMany } from "../../src/cli/spawn.ts";
import { stopServices } from "../../src/cli/stop_services.ts";
import {
  type Benchmark,
  type BenchResult,
  envNumber,
  printResult,
  round,
  say,
  sleep,
  waitExited,
} from "./_harness.ts";

const NAME = "spawn-fanout";

/**
 * The `spawn-fanout` benchmark; `BENCH_FANOUT` overrides the list of N
 * ("1,8,32,64"), `BENCH_PARALLEL` the 8 spawns (and bare runs) under way at once.
 */
export const spawnFanout: Benchmark = {
  name: NAME,
  description: "N spawns at once until all ALIVE vs N bare `deno run`s, N = 1..64 (ratio <= 2)",
  run,
};

async function run(): Promise<BenchResult> {
  const counts = (Deno.env.get("BENCH_FANOUT") || "1,8,32,64").split(",").map(Number);
  if (counts.some((n) => !(Number.isSafeInteger(n) && n > 0 && n <= 1000))) {
    throw new RangeError("BENCH_FANOUT must be a comma-separated list of counts from 1 to 1000");
  }
  const parallel = Math.round(envNumber("BENCH_PARALLEL", 8));
  const dir = await Deno.makeTempDir({ prefix: "fabricd-bench-fanout-" });
  let local: LocalFabric | null = null;
  const pids = new Set<number>();
  try {
    const script = join(dir, "empty.ts");
    await Deno.writeTextFile(script, "export {};\n");
    const fabricPath = join(dir, "fabric.yaml");
    local = await startLocalFabric(fabricPath, await initFabric(fabricPath), {
      dir,
      port: 0,
      heartbeatMs: 2000,
    });
    for (const record of await local.registry.list()) pids.add(record.pid);
    say(NAME, `fabric in ${dir}; warm-up (not counted): 1 spawn, 1 bare run`);
    await fanOut(local, 1, parallel, pids);
    await bareRuns(script, 1, parallel);
    let last: BenchResult | null = null;
    for (const count of counts) {
      if (last) printResult(last);
      await sleep(1000);
      const spawn = await fanOut(local, count, parallel, pids);
      await sleep(1000);
      const bare = await bareRuns(script, count, parallel);
      const ratio = spawn.ms / bare;
      say(
        NAME,
        `N=${count}: all ALIVE in ${round(spawn.ms, 1)} ms (${spawn.failed} failed), ` +
          `${count} bare runs in ${round(bare, 1)} ms, ratio ${round(ratio, 2)}`,
      );
      last = {
        name: `${NAME}-${count}`,
        value: round(spawn.ms),
        baseline: round(bare),
        ratio: round(ratio, 3),
        unit: "ms",
        goal: "ratio <= 2",
        goal_met: ratio <= 2 && spawn.failed === 0,
        count,
        parallel,
        failed_spawns: spawn.failed,
        warm_pool: Deno.env.get("FABRIC_WARM_POOL") || "1",
      };
    }
    if (!last) throw new RangeError("BENCH_FANOUT names no count");
    return last;
  } finally {
    if (local) {
      for (const record of await local.registry.list().catch(() => [])) pids.add(record.pid);
      await local.stopAll("benchmark finished").catch(() => 0);
    }
    const left = await waitExited(pids, 15_000);
    for (const pid of left) {
      say(NAME, `process ${pid} still running after stop: killing it`);
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Gone in the meantime.
      }
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Spawns `count` spawners, `parallel` at a time; the wall time until all answered, then stops them. */
async function fanOut(
  local: LocalFabric,
  count: number,
  parallel: number,
  pids: Set<number>,
): Promise<{ ms: number; failed: number }> {
  const started = performance.now();
  const outcome = await spawnMany(local.client, local.spawner, {
    body: { role: "spawner", on: "local://", sessions: [], options: {} },
    count,
    parallel,
  });
  const ms = performance.now() - started;
  if (outcome.failed.length > 0) say(NAME, `first failure: ${outcome.failed[0]!.message}`);
  const ids = outcome.started.map((r) => r.id);
  const mine: number[] = [];
  for (const id of ids) {
    const pid = (await local.registry.get(id))?.record.pid ?? 0;
    pids.add(pid);
    mine.push(pid);
  }
  await stopServices(local.client, local.registry, { reason: "benchmark round done", ids });
  await waitExited(mine, 15_000);
  return { ms, failed: outcome.failed.length };
}

/** Wall time of `count` runs of `deno run --quiet SCRIPT`, `parallel` at a time, ms. */
async function bareRuns(script: string, count: number, parallel: number): Promise<number> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      const status = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--quiet", script],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn().status;
      if (!status.success) throw new Error(`deno run of an empty script exited ${status.code}`);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
  return performance.now() - started;
}
