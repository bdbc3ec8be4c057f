/**
 * `scale`: one registry (its own process, the flags `fabricd up` gives it)
 * under N = 1,000, 5,000, 10,000 and 20,000 services, each heartbeating every
 * 2 s (jittered like a real service) behind 2 aggregators, as services below
 * two bridges do. The identities live in 2 load threads, each with one
 * `HeartbeatAggregator` sending signed batches (`POST /v1/registry/heartbeats`).
 *
 * Per N: p50/p99 beat-to-commit (a beat taken by its aggregator until the
 * registry answered its batch, committed), registry CPU and RSS, SUSPECT/DEAD
 * declared (all false: every identity beats), `fabricd status --json` time and
 * change-stream lag to a watcher. One RESULT per N (`scale-sqlite-10000`:
 * value p99 ms, baseline the TTL/3 goal), then `scale-growth`: registry CPU per
 * heartbeat at 10,000 against 1,000. `BENCH_SECONDS` (default 25) is each N's
 * window; `BENCH_STORES=sqlite,etcd` adds etcd; `BENCH_SCALE_NS` picks the Ns.
 * @module
 */
import { join } from "node:path";
import { FabricClient } from "../../src/client/fabric_client.ts";
import { RegistryClient } from "../../src/client/registry_client.ts";
import { initFabric } from "../../src/cli/init.ts";
import { saveFabricFile } from "../../src/config/fabric_file.ts";
import { readKeyFile } from "../../src/crypto/keys.ts";
import {
  type Benchmark,
  type BenchResult,
  clockTicksPerSecond,
  envNumber,
  percentile,
  printResult,
  processCpuSeconds,
  round,
  say,
  sleep,
} from "./_harness.ts";
import {
  etcdStoreUrl,
  etcdUnusable,
  forEachConcurrently,
  registerService,
  startRegistry,
  stopRegistry,
  waitAlive,
  withTestCluster,
} from "./_registry_stores.ts";
import type { ScaleCommand, ScaleReport } from "./_scale_worker.ts";

const NAME = "scale";
const INTERVAL_MS = 2000;
const TTL_MS = 3 * INTERVAL_MS;
const GOAL_MS = TTL_MS / 3;
const AGGREGATORS = ["brg-scale0001", "brg-scale0002"];
const PROBE = "agt-probe";

/** The `scale` benchmark. */
export const scale: Benchmark = {
  name: NAME,
  description: "1k-20k services at 2 s behind 2 aggregators: p99 beat-to-commit vs TTL/3, " +
    "registry CPU/RSS, false SUSPECT, status time (BENCH_STORES=sqlite,etcd)",
  run,
};

/** What one N measured (snake_case: it goes into the RESULT line as it is). */
interface StepReport {
  services: number;
  beats_per_s: number;
  p50_ms: number;
  p99_ms: number;
  registry_cpu_cores: number;
  registry_rss_mb: number;
  cpu_us_per_beat: number;
  false_suspect_or_dead: number;
  not_ok_verdicts: number;
  errors: number;
  first_error?: string;
  status_json_ms: number;
  status_json_services: number;
  watch_lag_p50_ms: number;
  watch_lag_max_ms: number;
  generator_lag_p99_ms: number;
  batches_per_s: number;
}

async function run(): Promise<BenchResult> {
  const stores = (Deno.env.get("BENCH_STORES") ?? "sqlite").split(",").map((s) => s.trim());
  const ns = (Deno.env.get("BENCH_SCALE_NS") ?? "1000,5000,10000,20000").split(",").map(Number);
  const seconds = envNumber("BENCH_SECONDS", 25);
  let growth: BenchResult | undefined;
  if (stores.includes("sqlite")) {
    growth = await measureStore("sqlite", ns, seconds, (dir) => `sqlite:${join(dir, "r.db")}`);
  }
  if (stores.includes("etcd")) {
    const unusable = await etcdUnusable();
    if (unusable !== null) say(NAME, `etcd skipped: ${unusable}`);
    else {
      const etcd = await withTestCluster(
        NAME,
        ({ urls }) => measureStore("etcd", ns, seconds, () => etcdStoreUrl(urls)),
      );
      growth ??= etcd;
    }
  }
  if (!growth) throw new Error(`No store measured: BENCH_STORES="${stores.join(",")}"`);
  return growth;
}

/** Every N on one store, growing one registry; prints a RESULT per N, returns `scale-growth`. */
async function measureStore(
  store: string,
  ns: number[],
  seconds: number,
  storeOf: (dir: string) => string,
): Promise<BenchResult> {
  const tag = `${NAME}/${store}`;
  const dir = await Deno.makeTempDir({ prefix: `fabricd-bench-scale-${store}-` });
  const fabricPath = join(dir, "fabric.yaml");
  const fabric = await initFabric(fabricPath);
  const keyFile = join(dir, fabric.key);
  const keys = await readKeyFile(keyFile);
  const client = new FabricClient(keys, { timeoutMs: 30_000 });
  const started = startRegistry({
    id: "reg-scale0001",
    dir,
    keyFile,
    store: storeOf(dir),
    heartbeatMs: INTERVAL_MS,
  });
  const workers: Worker[] = [];
  const watch = new AbortController();
  try {
    const registry = new RegistryClient(client, [started.target]);
    await waitAlive(registry, started);
    await saveFabricFile(fabricPath, { ...fabric, registries: [started.target] });
    say(tag, `registry pid ${started.pid} ALIVE at ${started.target.url}, --store ${storeOf(dir)}`);
    const watcher = startWatcher(registry, watch.signal);
    for (const via of AGGREGATORS) {
      const worker = new Worker(new URL("./_scale_worker.ts", import.meta.url), { type: "module" });
      workers.push(worker);
      await ask(worker, {
        kind: "init",
        jwk: keys.jwk,
        registry: started.target,
        via,
        intervalMs: INTERVAL_MS,
      });
    }
    const ticks = await clockTicksPerSecond();
    const reports = new Map<number, StepReport>();
    let registered = 0;
    for (const n of ns) {
      const ids = Array.from(
        { length: n - registered },
        (_, i) => `agt-s${String(registered + i).padStart(7, "0")}`,
      );
      const began = performance.now();
      // Registered in slices, each beating at once: a record waits for no later one.
      for (let from = 0; from < ids.length; from += 250) {
        const slice = ids.slice(from, from + 250);
        await forEachConcurrently(slice, 16, (id) => {
          const index = Number(id.slice(5));
          return registerService(registry, id, AGGREGATORS[index % 2]!);
        });
        await Promise.all(
          workers.map((w, k) =>
            ask(w, { kind: "add", ids: slice.filter((id) => Number(id.slice(5)) % 2 === k) })
          ),
        );
      }
      say(
        tag,
        `N=${n}: registered ${ids.length} more in ${
          round((performance.now() - began) / 1000, 1)
        } s`,
      );
      registered = n;
      await sleep(2.5 * INTERVAL_MS);
      const report = await measureStep(n, seconds, {
        tag,
        pid: started.pid,
        ticks,
        workers,
        watcher,
        registry,
        fabricPath,
      });
      reports.set(n, report);
      const value = report.p99_ms;
      printResult({
        name: `${NAME}-${store}-${n}`,
        value,
        baseline: GOAL_MS,
        ratio: round(value / GOAL_MS, 3),
        unit: "ms (p99 heartbeat-to-commit vs TTL/3)",
        goal: "ratio <= 1, false_suspect_or_dead 0, registry_cpu_cores <= 1",
        goal_met: value <= GOAL_MS && report.false_suspect_or_dead === 0 &&
          report.registry_cpu_cores <= 1,
        store,
        interval_ms: INTERVAL_MS,
        ttl_ms: TTL_MS,
        aggregators: AGGREGATORS.length,
        cores: navigator.hardwareConcurrency,
        ...report,
      });
    }
    const low = reports.get(1000) ?? reports.get(ns[0]!)!;
    const high = reports.get(10000) ?? reports.get(ns.at(-1)!)!;
    return {
      name: `${NAME}-growth`,
      value: high.cpu_us_per_beat,
      baseline: low.cpu_us_per_beat,
      ratio: round(high.cpu_us_per_beat / low.cpu_us_per_beat, 3),
      unit:
        `registry CPU µs per heartbeat at ${high.services} vs ${low.services} services (${store})`,
      goal: "ratio <= 2 (about flat: batches make a beat's cost independent of N)",
      goal_met: high.cpu_us_per_beat <= 2 * low.cpu_us_per_beat,
    };
  } finally {
    watch.abort();
    for (const worker of workers) {
      await ask(worker, { kind: "stop" }).catch(() => undefined);
      worker.terminate();
    }
    await stopRegistry(tag, client, started);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

interface StepContext {
  tag: string;
  pid: number;
  ticks: number;
  workers: Worker[];
  watcher: Watcher;
  registry: RegistryClient;
  fabricPath: string;
}

async function measureStep(n: number, seconds: number, ctx: StepContext): Promise<StepReport> {
  const declaredBefore = ctx.watcher.declared.length;
  await Promise.all(ctx.workers.map((w) => ask(w, { kind: "measure", on: true })));
  const cpu0 = processCpuSeconds(ctx.pid, ctx.ticks);
  const wall0 = performance.now();
  await sleep(seconds * 1000);
  const cpu = processCpuSeconds(ctx.pid, ctx.ticks) - cpu0;
  const wall = (performance.now() - wall0) / 1000;
  const parts = await Promise.all(
    ctx.workers.map((w) => ask(w, { kind: "measure", on: false }) as Promise<ScaleReport>),
  );
  const commit = parts.flatMap((p) => p.commitMs);
  const beats = parts.reduce((s, p) => s + p.beats, 0);
  const lags = await probeWatchLag(ctx.registry, ctx.watcher, 5);
  const status = await timeStatus(ctx.fabricPath);
  const declared = ctx.watcher.declared.slice(declaredBefore);
  const generatorLag = parts.flatMap((p) => p.lagMs);
  const report: StepReport = {
    services: n,
    beats_per_s: round(beats / wall, 1),
    p50_ms: commit.length ? round(percentile(commit, 50)) : -1,
    p99_ms: commit.length ? round(percentile(commit, 99)) : -1,
    registry_cpu_cores: round(cpu / wall, 4),
    registry_rss_mb: rssMb(ctx.pid),
    cpu_us_per_beat: round(cpu / Math.max(1, beats) * 1e6, 2),
    false_suspect_or_dead: declared.length,
    not_ok_verdicts: parts.reduce((s, p) => s + p.notOk, 0),
    errors: parts.reduce((s, p) => s + p.errors, 0),
    ...(parts.some((p) => p.firstError)
      ? { first_error: parts.find((p) => p.firstError)!.firstError }
      : {}),
    status_json_ms: status.ms,
    status_json_services: status.services,
    // -1: no sample (no probe event seen within 10 s, or no beat answered in the window).
    watch_lag_p50_ms: lags.length ? round(percentile(lags, 50)) : -1,
    watch_lag_max_ms: lags.length ? round(Math.max(...lags)) : -1,
    generator_lag_p99_ms: generatorLag.length ? round(percentile(generatorLag, 99)) : -1,
    batches_per_s: round(parts.reduce((s, p) => s + p.batches, 0) / wall, 1),
  };
  say(
    ctx.tag,
    `N=${n}: ${report.beats_per_s} beats/s, commit p50 ${report.p50_ms} ms p99 ${report.p99_ms} ms; ` +
      `registry ${report.registry_cpu_cores} core, ${report.registry_rss_mb} MB, ` +
      `${report.cpu_us_per_beat} µs/beat; declared ${declared.length}${
        declared.length ? ` (${declared[0]})` : ""
      }; ` +
      `status --json ${report.status_json_ms} ms; watch lag p50 ${report.watch_lag_p50_ms} ms`,
  );
  return report;
}

interface Watcher {
  /** SUSPECT/DEAD declarations of the simulated services, `"<id> <state>"`. */
  declared: string[];
  /** Resolves when probe `id`'s next transition to `to` is seen. */
  next(id: string, to: string): Promise<number>;
}

function startWatcher(registry: RegistryClient, signal: AbortSignal): Watcher {
  const declared: string[] = [];
  let waiting: { id: string; to: string; resolve: (at: number) => void } | null = null;
  void registry.watch(0, (event) => {
    const to = event.transition?.to;
    if (event.record.id.startsWith(PROBE)) {
      if (waiting && to === waiting.to && event.record.id === waiting.id) {
        waiting.resolve(performance.now());
      }
    } else if (to === "SUSPECT" || to === "DEAD") declared.push(`${event.record.id} ${to}`);
  }, signal).catch(() => {});
  return {
    declared,
    next: (id, to) => new Promise((resolve) => (waiting = { id, to, resolve })),
  };
}

/**
 * Change-stream lag: `rounds` probe services are each registered (ALIVE) and
 * stopped (STOPPED); each write's answer to its event at the watcher.
 */
async function probeWatchLag(
  registry: RegistryClient,
  watcher: Watcher,
  rounds: number,
): Promise<number[]> {
  const lags: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const id = `${PROBE}${String(++probes).padStart(4, "0")}`;
    for (const to of ["ALIVE", "STOPPED"] as const) {
      const seen = watcher.next(id, to);
      const began = performance.now();
      if (to === "ALIVE") await registerService(registry, id, "reg-scale0001");
      else await registry.transition(id, { incarnation: 1, to, reason: "watch lag probe" });
      const at = await Promise.race([seen, sleep(10_000).then(() => NaN)]);
      lags.push(at - began);
    }
  }
  return lags.filter(Number.isFinite);
}

let probes = 0;

/** `fabricd status --json` as a user runs it (a new process); its wall time and records. */
async function timeStatus(fabricPath: string): Promise<{ ms: number; services: number }> {
  const main = new URL("../../main.ts", import.meta.url).pathname;
  const began = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-all", main, "status", "--json", "--fabric", fabricPath],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = round(performance.now() - began, 1);
  if (!out.success) {
    throw new Error(`fabricd status failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  const body = JSON.parse(new TextDecoder().decode(out.stdout)) as { services: unknown[] };
  return { ms, services: body.services.length };
}

function rssMb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return round(kb / 1024, 1);
}

/** Sends `command` to a worker and waits for its answer. */
function ask(worker: Worker, command: ScaleCommand): Promise<unknown> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (event) => resolve(event.data);
    worker.onerror = (event) => reject(new Error(event.message));
    worker.postMessage(command);
  });
}
