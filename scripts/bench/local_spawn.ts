/**
 * `local-spawn`: time from a signed `POST /v1/spawn` (role spawner, on
 * `local://`) to its answer with state ALIVE, against a bare `deno run` of an
 * empty script on the same Deno. The spawn answers only once the child has
 * bootstrapped, been configured and registered ALIVE.
 * @module
 */
import { join } from "node:path";
import { FabricRequestError } from "../../src/client/fabric_client.ts";
import { initFabric } from "../../src/cli/init.ts";
import { type LocalFabric, startLocalFabric } from "../../src/cli/local_fabric.ts";
import { stopServices } from "../../src/cli/stop_services.ts";
import type { SpawnResult, Transition } from "../../src/types/mod.ts";
import {
  type Benchmark,
  type BenchResult,
  envNumber,
  median,
  round,
  say,
  sleep,
  summarize,
  type Summary,
  waitExited,
} from "./_harness.ts";

const NAME = "local-spawn";

/**
 * The `local-spawn` benchmark; `BENCH_RUNS` overrides the 15 runs,
 * `BENCH_SETTLE_MS` the 1000 ms of quiet after each spawn (the spawner refills
 * its warm pool then, which must not slow the next bare run or spawn), and
 * `FABRIC_WARM_POOL=0` measures cold spawns.
 */
export const localSpawn: Benchmark = {
  name: NAME,
  description: "signed POST /v1/spawn on local:// until ALIVE vs a bare `deno run` (ratio <= 3)",
  run,
};

/** One successful spawn: wall time and the phases the registry recorded. */
interface SpawnSample {
  ms: number;
  /** LAUNCHING -> BOOTSTRAPPING: process start, Deno boot, bootstrap call, ms. */
  launchMs: number;
  /** BOOTSTRAPPING -> ALIVE: key hand-over, configure, registration, ms. */
  configureMs: number;
}

/** What every spawn of one benchmark run shares. */
interface SpawnRun {
  local: LocalFabric;
  /** The fabric's state directory (children's logs are in `logs/`). */
  dir: string;
  /** Every process the fabric started, to check none is left. */
  pids: Set<number>;
  /** Why each failed spawn failed. */
  failures: string[];
}

async function run(): Promise<BenchResult> {
  const runs = Math.round(envNumber("BENCH_RUNS", 15));
  const dir = await Deno.makeTempDir({ prefix: "fabricd-bench-spawn-" });
  let local: LocalFabric | null = null;
  const pids = new Set<number>();
  try {
    const script = join(dir, "empty.ts");
    await Deno.writeTextFile(script, "export {};\n");
    const fabricPath = join(dir, "fabric.yaml");
    const fabric = await initFabric(fabricPath);
    say(NAME, `fabric in ${dir}; starting registry and root spawner (warm pool ${warmPool()})`);
    local = await startLocalFabric(fabricPath, fabric, { dir, port: 0, heartbeatMs: 2000 });
    for (const record of await local.registry.list()) pids.add(record.pid);

    say(NAME, "warm-up (not counted): one bare deno run, one spawn");
    await bareRun(script);
    const failures: string[] = [];
    const spawnRun: SpawnRun = { local, dir, pids, failures };
    await spawnAndStop(spawnRun);

    const settleMs = envNumber("BENCH_SETTLE_MS", 1000);
    const bare: number[] = [];
    const spawns: SpawnSample[] = [];
    // Interleaved, so drift of the machine's load hits both series alike.
    const maxAttempts = runs * 2 + 2;
    let attempts = 0;
    while (spawns.length < runs && attempts < maxAttempts) {
      attempts++;
      if (bare.length < runs) bare.push(await bareRun(script));
      await sleep(settleMs);
      const sample = await spawnAndStop(spawnRun);
      if (sample) spawns.push(sample);
      await sleep(settleMs);
      say(
        NAME,
        `run ${attempts}: bare ${round(bare.at(-1) ?? 0, 1)} ms, spawn ${
          sample ? `${round(sample.ms, 1)} ms` : `FAILED (${failures.at(-1)})`
        }`,
      );
    }
    while (bare.length < runs) bare.push(await bareRun(script));
    if (spawns.length === 0) {
      throw new Error(`No spawn succeeded in ${attempts} attempts: ${failures[0] ?? "?"}`);
    }

    const spawn = summarize(spawns.map((s) => s.ms));
    const base = summarize(bare);
    const launchMs = median(spawns.map((s) => s.launchMs));
    const configureMs = median(spawns.map((s) => s.configureMs));
    const ratio = spawn.p50 / base.p50;
    const line = (what: string, s: Summary): string =>
      `${what}: median ${round(s.p50, 1)} ms, p90 ${round(s.p90, 1)} ms, min ${
        round(s.min, 1)
      } ms (${s.n} runs)`;
    say(NAME, line("spawn to ALIVE", spawn));
    say(
      NAME,
      `  launch->bootstrap median ${round(launchMs, 1)} ms, bootstrap->ALIVE ${
        round(configureMs, 1)
      } ms (registry transition times)`,
    );
    say(NAME, line("bare deno run", base));
    say(NAME, `ratio ${round(ratio, 2)} (goal <= 3)`);
    if (failures.length > 0) {
      say(NAME, `${failures.length} spawn(s) failed (warm-up included): ${failures[0]}`);
    }
    return {
      name: NAME,
      value: round(spawn.p50),
      baseline: round(base.p50),
      ratio: round(ratio, 3),
      unit: "ms",
      goal: "ratio <= 3",
      goal_met: ratio <= 3,
      runs: spawn.n,
      spawn_p90_ms: round(spawn.p90),
      spawn_min_ms: round(spawn.min),
      launch_to_bootstrap_p50_ms: round(launchMs),
      bootstrap_to_alive_p50_ms: round(configureMs),
      bare_p90_ms: round(base.p90),
      bare_min_ms: round(base.min),
      failed_spawns: failures.length,
      warm_pool: warmPool(),
      ...(failures.length > 0 ? { first_failure: failures[0] } : {}),
    };
  } finally {
    await shutDown(local, pids);
    await killWarmLeftovers(dir);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Warm processes per role the spawner keeps (FABRIC_WARM_POOL, default 1). */
function warmPool(): string {
  return Deno.env.get("FABRIC_WARM_POOL") || "1";
}

/**
 * Warm processes of this fabric still running once it stopped (there must be
 * none: the spawner ends its pool when it stops); reported and killed.
 */
async function killWarmLeftovers(dir: string): Promise<void> {
  const left = await waitExited(warmProcesses(dir), 5000);
  for (const pid of left) {
    say(NAME, `warm process ${pid} still running after the spawner stopped: killing it`);
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Gone in the meantime.
    }
  }
  if (left.length === 0) say(NAME, "no warm process left behind");
}

/** PIDs of `fabricd --warm` processes whose command line names `dir`. */
function warmProcesses(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const args = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0");
      if (args.includes("--warm") && args.includes(dir)) pids.push(Number(entry.name));
    } catch {
      // Ended while we looked.
    }
  }
  return pids;
}

/** Wall time of `deno run --quiet SCRIPT` with this very Deno, ms. */
async function bareRun(script: string): Promise<number> {
  const started = performance.now();
  const status = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", script],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn().status;
  const ms = performance.now() - started;
  if (!status.success) throw new Error(`deno run of an empty script exited ${status.code}`);
  return ms;
}

/**
 * Spawns one spawner through the root spawner, timing the signed call, then
 * stops it and waits for its process to end. Returns null (and records why)
 * when the spawn failed.
 */
async function spawnAndStop(run: SpawnRun): Promise<SpawnSample | null> {
  const { local, pids, failures } = run;
  const started = performance.now();
  let result: SpawnResult;
  try {
    result = await local.client.call<SpawnResult>(local.spawner, {
      method: "POST",
      path: "/v1/spawn",
      body: { role: "spawner", on: "local://" },
    }, { timeoutMs: 60_000 });
  } catch (error) {
    failures.push(error instanceof FabricRequestError ? error.message : String(error));
    if (failures.length === 1) await showChildLog(run.dir, error);
    await collectPids(local, pids);
    return null;
  }
  const ms = performance.now() - started;
  if (result.state !== "ALIVE") {
    failures.push(`spawn answered state ${result.state}`);
    return null;
  }
  const found = await local.registry.get(result.id);
  const pid = found?.record.pid ?? 0;
  pids.add(pid);
  await stopServices(local.client, local.registry, {
    reason: "benchmark run done",
    ids: [result.id],
  });
  await waitExited([pid], 10_000);
  return { ms, ...phases(found?.transitions ?? []) };
}

/** Prints the end of a failed child's log, which the benchmark deletes afterwards. */
async function showChildLog(dir: string, error: unknown): Promise<void> {
  const id = error instanceof FabricRequestError ? error.body.id : undefined;
  if (typeof id !== "string" || !/^[a-z0-9-]+$/.test(id)) return;
  const log = await Deno.readTextFile(join(dir, "logs", `${id}.log`))
    .catch(() => "");
  const tail = log.trim().split("\n").slice(-3).map((line) => `    ${line.slice(0, 300)}`);
  if (tail.length > 0) say(NAME, `log of ${id} ends:\n${tail.join("\n")}`);
}

function phases(transitions: Transition[]): { launchMs: number; configureMs: number } {
  const at = (state: string): number => transitions.find((t) => t.to === state)?.at ?? NaN;
  return {
    launchMs: at("BOOTSTRAPPING") - at("LAUNCHING"),
    configureMs: at("ALIVE") - at("BOOTSTRAPPING"),
  };
}

async function collectPids(local: LocalFabric, pids: Set<number>): Promise<void> {
  for (const record of await local.registry.list().catch(() => [])) {
    if (record.pid > 0) pids.add(record.pid);
  }
}

/** Stops the whole fabric and makes sure none of its processes is left. */
async function shutDown(local: LocalFabric | null, pids: Set<number>): Promise<void> {
  if (local) {
    await collectPids(local, pids);
    const stopped = await local.stopAll("benchmark finished").catch((error) => {
      say(NAME, `stopAll failed: ${error instanceof Error ? error.message : error}`);
      return 0;
    });
    say(NAME, `asked ${stopped} service(s) to stop`);
  }
  const left = await waitExited(pids, 10_000);
  for (const pid of left) {
    say(NAME, `process ${pid} still running after stop: killing it`);
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Gone in the meantime.
    }
  }
  if (left.length === 0 && pids.size > 0) say(NAME, "no process left behind");
}
