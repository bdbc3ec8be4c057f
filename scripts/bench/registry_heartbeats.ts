/**
 * `registry-heartbeats`: a registry role in its own process (with the flags
 * `fabricd up` gives it) under 2,000 simulated services that heartbeat every
 * 2 s with jitter. Reports heartbeat latency under load against the latency of
 * one lone service measured first, the achieved rate, and the registry's CPU
 * share from `/proc/PID/stat`.
 * @module
 */
import { join } from "node:path";
import { FabricClient, type Target } from "../../src/client/fabric_client.ts";
import { RegistryClient } from "../../src/client/registry_client.ts";
import { generateFabricKeys, writeKeyFile } from "../../src/crypto/keys.ts";
import { selfCommand } from "../../src/image/self_command.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";
import {
  type Benchmark,
  type BenchResult,
  clockTicksPerSecond,
  envNumber,
  machineBusySeconds,
  percentile,
  processCpuSeconds,
  round,
  say,
  sleep,
  within,
} from "./_harness.ts";
import { HeartbeatLoad } from "./_heartbeat_load.ts";

const NAME = "registry-heartbeats";
const SERVICES = 2000;
const INTERVAL_MS = 2000;
const BASELINE_SAMPLES = 200;
const REGISTRY_ID = "reg-bench0001";

/** The `registry-heartbeats` benchmark; `BENCH_SECONDS` overrides the 60 s of load. */
export const registryHeartbeats: Benchmark = {
  name: NAME,
  description: `${SERVICES} services heartbeating every 2 s: p99 latency vs one service, CPU`,
  run,
};

async function run(): Promise<BenchResult> {
  const seconds = envNumber("BENCH_SECONDS", 60);
  const cores = navigator.hardwareConcurrency;
  const ticks = await clockTicksPerSecond();
  const dir = await Deno.makeTempDir({ prefix: "fabricd-bench-registry-" });
  const keys = await generateFabricKeys();
  const client = new FabricClient(keys, { timeoutMs: 10_000 });
  const watch = new AbortController();
  let started: RegistryProcess | null = null;
  let load: HeartbeatLoad | null = null;
  try {
    const keyFile = join(dir, "fabric.key");
    await writeKeyFile(keyFile, keys);
    started = startRegistry(dir, keyFile);
    const { target, pid } = started;
    const registry = new RegistryClient(client, [target]);
    const heartbeats = new HeartbeatLoad(registry, INTERVAL_MS);
    load = heartbeats;
    await waitAlive(registry, started);
    say(NAME, `registry ${REGISTRY_ID} (pid ${pid}) ALIVE at ${target.url}`);

    const ids = Array.from({ length: SERVICES }, (_, i) => `agt-b${String(i).padStart(7, "0")}`);
    // Follows the change stream, so a service declared SUSPECT and taken back
    // by its next heartbeat is seen too, not only what the final list shows.
    const declared: string[] = [];
    let watchFailure = "";
    const watching = registry.watch(0, (event) => {
      const to = event.transition?.to;
      if (to === "SUSPECT" || to === "DEAD") declared.push(`${event.record.id} ${to}`);
    }, watch.signal).catch((error) => {
      watchFailure = String(error);
      say(NAME, `registry watch failed: ${watchFailure}`);
    });

    await register(registry, ids[0]!);
    say(NAME, `baseline: ${BASELINE_SAMPLES} signed heartbeats of one lone service (after 50)`);
    const lone: number[] = [];
    for (let i = -50; i < BASELINE_SAMPLES; i++) {
      const began = performance.now();
      await registry.heartbeat(ids[0]!, 1);
      if (i >= 0) lone.push(performance.now() - began);
      await sleep(5);
    }
    heartbeats.add(ids[0]!);
    say(NAME, `  p50 ${round(percentile(lone, 50))} ms, p99 ${round(percentile(lone, 99))} ms`);

    say(NAME, `registering ${SERVICES - 1} more services; each heartbeats once registered`);
    const registering = performance.now();
    await forEachConcurrently(ids.slice(1), 8, async (id) => {
      await register(registry, id);
      heartbeats.add(id);
    });
    say(NAME, `  registered in ${round((performance.now() - registering) / 1000, 1)} s`);
    // Lets the registration burst (GC, JIT, the watch replay) settle first.
    await sleep(2.5 * INTERVAL_MS);

    say(NAME, `measuring ${seconds} s of load (load generator in this process)`);
    const registryCpu0 = processCpuSeconds(pid, ticks);
    const selfCpu0 = processCpuSeconds(Deno.pid, ticks);
    const machine0 = machineBusySeconds(ticks);
    const wall0 = performance.now();
    heartbeats.measuring = true;
    for (let left = seconds; left > 0; left -= 10) {
      await sleep(Math.min(left, 10) * 1000);
      const sofar = (performance.now() - wall0) / 1000;
      say(
        NAME,
        `  ${round(sofar, 0)} s: ${round(heartbeats.counts.completed / sofar, 0)} heartbeats/s`,
      );
    }
    heartbeats.measuring = false;
    const wallSeconds = (performance.now() - wall0) / 1000;
    const completedInWindow = heartbeats.counts.completed;
    const registryCpu = processCpuSeconds(pid, ticks) - registryCpu0;
    const selfCpu = processCpuSeconds(Deno.pid, ticks) - selfCpu0;
    const otherCpu = machineBusySeconds(ticks) - machine0 - registryCpu - selfCpu;
    await heartbeats.stop();

    const records = await registry.list();
    const unwell = records.filter((r) => r.state !== "ALIVE");
    watch.abort();
    await watching;
    const counts = heartbeats.counts;
    if (counts.completed === 0) throw new Error(`No heartbeat succeeded: ${counts.firstError}`);
    const rate = completedInWindow / wallSeconds;
    const p50 = percentile(counts.latenciesMs, 50);
    const p99 = percentile(counts.latenciesMs, 99);
    const baseline = percentile(lone, 99);
    const cpuShare = registryCpu / wallSeconds / cores;
    say(
      NAME,
      `achieved ${round(rate, 0)} heartbeats/s (target ${SERVICES / (INTERVAL_MS / 1000)})`,
    );
    say(
      NAME,
      `latency under load: p50 ${round(p50)} ms, p99 ${round(p99)} ms; lone p99 ${
        round(baseline)
      } ms`,
    );
    say(
      NAME,
      `registry CPU share ${round(cpuShare * 100, 1)} % of ${cores} cores (${
        round(registryCpu / wallSeconds, 3)
      } core); load generator ${round(selfCpu / wallSeconds, 3)} core; generator lag p99 ${
        round(percentile(counts.lagsMs, 99))
      } ms`,
    );
    say(
      NAME,
      `other processes on this machine used ${
        round(Math.max(0, otherCpu) / wallSeconds, 2)
      } core meanwhile (a busy machine inflates p99)`,
    );
    say(NAME, `errors ${counts.errors}${counts.firstError ? ` (${counts.firstError})` : ""}`);
    say(
      NAME,
      `declared SUSPECT/DEAD during the run: ${declared.length}; not ALIVE at the end: ${unwell.length}${
        declared.length > 0 ? ` (first: ${declared[0]})` : ""
      }`,
    );
    return {
      name: NAME,
      value: round(p99),
      baseline: round(baseline),
      ratio: round(p99 / baseline, 3),
      unit: "ms (p99 heartbeat latency)",
      services: SERVICES,
      seconds: round(wallSeconds, 1),
      heartbeats_per_s: round(rate, 1),
      p50_ms: round(p50),
      p99_ms: round(p99),
      lone_p50_ms: round(percentile(lone, 50)),
      registry_cpu_share: round(cpuShare, 4),
      registry_cpu_cores: round(registryCpu / wallSeconds, 4),
      generator_cpu_cores: round(selfCpu / wallSeconds, 4),
      generator_lag_p99_ms: round(percentile(counts.lagsMs, 99)),
      other_cpu_cores: round(Math.max(0, otherCpu) / wallSeconds, 3),
      errors: counts.errors,
      declared_suspect_or_dead: declared.length,
      not_alive_at_end: unwell.length,
      watch_ok: watchFailure === "",
      cores,
    };
  } finally {
    watch.abort();
    await load?.stop();
    if (started) await stopRegistry(client, started);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The registry process this benchmark started. */
interface RegistryProcess {
  target: Target;
  /** PID of the Deno process itself (the shell execs it). */
  pid: number;
  logFile: string;
  /** Resolves with the exit code. */
  exited: Promise<number>;
  child: Deno.ChildProcess;
}

/**
 * Starts `fabricd --role registry` on SQLite with the flags `startLocalFabric`
 * gives it, as a process of our own (its output goes to a log file).
 */
function startRegistry(dir: string, keyFile: string): RegistryProcess {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const self = selfCommand();
  const logFile = join(dir, "registry.log");
  const child = new Deno.Command("/bin/sh", {
    args: [
      ...["-c", 'exec "$0" "$@" >"$BENCH_LOG_FILE" 2>&1 </dev/null', self.executable],
      ...self.prefix,
      ...["--role", "registry", "--id", REGISTRY_ID, "--listen", `127.0.0.1:${port}`],
      ...["--store", `sqlite:${join(dir, "registry.db")}`, "--dir", dir, "--key", keyFile],
      ...["--heartbeat-ms", String(INTERVAL_MS)],
    ],
    env: { BENCH_LOG_FILE: logFile },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    target: { id: REGISTRY_ID, url: `http://127.0.0.1:${port}` },
    pid: child.pid,
    logFile,
    exited: child.status.then((status) => status.code),
    child,
  };
}

async function waitAlive(registry: RegistryClient, process: RegistryProcess): Promise<void> {
  let exitCode: number | null = null;
  process.exited.then((code) => (exitCode = code));
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && exitCode === null) {
    const found = await registry.get(REGISTRY_ID).catch(() => undefined);
    if (found?.record.state === "ALIVE") return;
    await sleep(50);
  }
  const log = await Deno.readTextFile(process.logFile).catch(() => "");
  const why = exitCode === null ? "did not come up within 20 s" : `exited with code ${exitCode}`;
  throw new Error(`Registry ${why}; its log ends:\n${log.split("\n").slice(-10).join("\n")}`);
}

/** Registers `id` as an ALIVE agent, incarnation 1, freshly heartbeaten. */
async function register(registry: RegistryClient, id: string): Promise<void> {
  const now = Date.now();
  const record: ServiceRecord = {
    id,
    role: "agent",
    state: "ALIVE",
    incarnation: 1,
    host: "bench",
    pid: 0,
    endpoint: "http://127.0.0.1:9",
    parent: REGISTRY_ID,
    route: [REGISTRY_ID, id],
    launcher: "local://",
    imageHash: "",
    sessions: [],
    started: now,
    lastHeartbeat: now,
    restarts: 0,
    lastFailure: "",
    updated: now,
  };
  await registry.put(record, "simulated service for the benchmark");
}

async function forEachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** Asks the registry to stop; kills it when it has not exited within 10 s. */
async function stopRegistry(client: FabricClient, process: RegistryProcess): Promise<void> {
  await client.call(process.target, {
    method: "POST",
    path: "/v1/stop",
    body: { reason: "benchmark done" },
  }).catch((error) => say(NAME, `stop request failed: ${error}`));
  if (!(await within(process.exited.then(() => true), 10_000, false))) {
    say(NAME, `registry pid ${process.pid} did not exit within 10 s: killing it`);
    process.child.kill("SIGKILL");
    await process.exited;
  }
  say(NAME, "registry stopped");
}
