/**
 * `signed-requests`: throughput of `GET /v1/status` through the real
 * management app (`createApp`: RFC 9421 signature check, replay cache, signed
 * answer) against the same routers served without the signature middleware.
 *
 * Both servers run on this process's main thread; the load comes from a
 * worker thread, so client and server each get an event loop, but they share
 * the machine's cores. The three sides (unsigned, Ed25519, MAC session) run
 * in rounds, their order turning each round, and each ratio is the median of
 * its per-round ratios: on a machine whose speed drifts by tens of percent
 * within a minute, sides run one after the other compared different
 * machines.
 * @module
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { createApp, MAX_BODY_BYTES } from "../../src/api/app.ts";
import type { ServiceHandlers } from "../../src/api/service_handlers.ts";
import { serviceRoutes } from "../../src/api/service_routes.ts";
import { generateFabricKeys } from "../../src/crypto/keys.ts";
import { ReplayCache } from "../../src/crypto/replay_cache.ts";
import type { ServiceStatus } from "../../src/types/mod.ts";
import {
  type Benchmark,
  type BenchResult,
  clockTicksPerSecond,
  type ClosedLoopReport,
  envNumber,
  printResult,
  processCpuSeconds,
  round,
  say,
  summarize,
} from "./_harness.ts";
import type { LoadAnswer, LoadJob } from "./_load_worker.ts";

const NAME = "signed-requests";
const SERVICE_ID = "spw-bench0001";
const CONCURRENCY = 16;

/**
 * The `signed-requests` benchmark; `BENCH_SECONDS` overrides the 5 s per side,
 * `BENCH_ROUNDS` the 5 rounds they are split into.
 */
export const signedRequests: Benchmark = {
  name: NAME,
  description: "signed vs unsigned GET /v1/status throughput, 16 concurrent (ratio >= 0.5)",
  run,
};

// A small fixed body. Asserted rather than annotated, so the benchmark keeps
// compiling while ServiceStatus grows fields it does not care about.
const STATUS = {
  id: SERVICE_ID,
  role: "spawner",
  state: "ALIVE",
  incarnation: 1,
  host: "bench",
  pid: 1,
  endpoint: "http://127.0.0.1:1",
  parent: "",
  sessions: [],
  children: [],
  pendingPasswords: 0,
  uptimeMs: 1,
} as ServiceStatus;

const notUsed = (): never => {
  throw new Error("Not used by the benchmark");
};

const HANDLERS: ServiceHandlers = {
  status: () => STATUS,
  bootstrap: notUsed,
  configure: notUsed,
  spawn: notUsed,
  openSession: notUsed,
  closeSession: notUsed,
  connect: notUsed,
  stop: notUsed,
  renew: notUsed,
  ready: notUsed,
};

async function run(): Promise<BenchResult> {
  const seconds = envNumber("BENCH_SECONDS", 5);
  const keys = await generateFabricKeys();
  const signedApp = createApp({
    serviceId: SERVICE_ID,
    keys: () => keys,
    replayCache: new ReplayCache(),
    handlers: HANDLERS,
  });
  // The same routers and body limit, without the signature middleware.
  const plainApp = new Hono();
  plainApp.use(bodyLimit({ maxSize: MAX_BODY_BYTES }));
  plainApp.route("/v1", serviceRoutes(HANDLERS));

  const serve = (app: Hono): Deno.HttpServer<Deno.NetAddr> =>
    Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  const servers = [serve(signedApp), serve(plainApp)] as const;
  const worker = new Worker(new URL("./_load_worker.ts", import.meta.url), { type: "module" });
  const rounds = Math.max(1, Math.round(envNumber("BENCH_ROUNDS", 5)));
  try {
    const job = (
      mode: Mode,
      round: number,
    ): LoadJob => ({
      mode,
      url: `http://127.0.0.1:${servers[mode === "unsigned" ? 1 : 0].addr.port}`,
      path: "/v1/status",
      target: SERVICE_ID,
      jwk: keys.jwk,
      workers: CONCURRENCY,
      // A new client per job: its MAC session opens during the warm-up.
      warmupMs: round === 0 ? 1000 : 250,
      durationMs: (seconds / rounds) * 1000,
    });
    say(
      NAME,
      `servers on 127.0.0.1:${servers[0].addr.port} (signed) and :${
        servers[1].addr.port
      } (unsigned); ${CONCURRENCY} concurrent clients in a worker thread; ${rounds} rounds of ${
        round(seconds / rounds, 2)
      } s per side, the order of the sides turning each round`,
    );
    say(
      NAME,
      `note: client and server share this machine's ${navigator.hardwareConcurrency} cores`,
    );
    const ticks = await clockTicksPerSecond();
    const runs: Record<Mode, LoadOutcome[]> = { unsigned: [], signed: [], mac: [] };
    for (let r = 0; r < rounds; r++) {
      // Each side goes first, second and last in turn, so that a drift of
      // the machine's speed hits all three alike.
      const order = MODES.map((_, i) => MODES[(i + r) % MODES.length]!);
      for (const mode of order) runs[mode].push(await load(worker, job(mode, r), ticks));
      const rate = (mode: Mode): number => rateOf(runs[mode][r]!);
      say(
        NAME,
        `round ${r + 1}: unsigned ${round(rate("unsigned"), 0)}, Ed25519 ${
          round(rate("signed"), 0)
        }, MAC ${round(rate("mac"), 0)} req/s; ratios ${
          round(rate("signed") / rate("unsigned"), 3)
        } and ${round(rate("mac") / rate("unsigned"), 3)}`,
      );
    }
    // The ratio of each side is the median of its per-round ratios.
    const ratioOf = (mode: Mode): number =>
      median(runs[mode].map((run, r) => rateOf(run) / rateOf(runs.unsigned[r]!)));
    const plain = merged(runs.unsigned);
    const signed = merged(runs.signed);
    const mac = merged(runs.mac);
    const plainRps = rateOf(plain);
    const signedRps = rateOf(signed);
    const ratio = ratioOf("signed");
    const plainLatency = summarize(plain.latenciesMs);
    const signedLatency = summarize(signed.latenciesMs);
    say(
      NAME,
      `signed: ${round(signedRps, 0)} req/s, p50 ${round(signedLatency.p50)} ms, p99 ${
        round(signedLatency.p99)
      } ms`,
    );
    say(
      NAME,
      `unsigned: ${round(plainRps, 0)} req/s, p50 ${round(plainLatency.p50)} ms, p99 ${
        round(plainLatency.p99)
      } ms`,
    );
    say(NAME, `ratio signed/unsigned: ${round(ratio, 3)} (Ed25519 on every request)`);
    const macRps = rateOf(mac);
    const macRatio = ratioOf("mac");
    const macLatency = summarize(mac.latenciesMs);
    say(
      NAME,
      `mac: ${round(macRps, 0)} req/s, p50 ${round(macLatency.p50)} ms, p99 ${
        round(macLatency.p99)
      } ms; ratio mac/unsigned: ${round(macRatio, 3)} (goal >= 0.5)`,
    );
    const roundRatios = (mode: Mode): number[] =>
      runs[mode].map((run, r) => round(rateOf(run) / rateOf(runs.unsigned[r]!), 3));
    // The Ed25519 line first, then the MAC line (the benchmark's own result).
    printResult({
      name: NAME,
      value: round(signedRps, 1),
      baseline: round(plainRps, 1),
      ratio: round(ratio, 3),
      unit: "requests/s",
      goal: "reported beside the MAC path (signed-requests-mac)",
      concurrency: CONCURRENCY,
      seconds,
      rounds,
      round_ratios: roundRatios("signed"),
      ratio_is: "median of the per-round ratios; value and baseline: mean rates over all rounds",
      signed_p50_ms: round(signedLatency.p50, 3),
      signed_p99_ms: round(signedLatency.p99, 3),
      unsigned_p50_ms: round(plainLatency.p50, 3),
      unsigned_p99_ms: round(plainLatency.p99, 3),
      signed_errors: signed.errors,
      unsigned_errors: plain.errors,
      signed_cpu_cores: round(signed.cpuCores),
      unsigned_cpu_cores: round(plain.cpuCores),
      cores: navigator.hardwareConcurrency,
      note: "client (worker thread) and servers (main thread) share the cores",
    });
    return {
      name: `${NAME}-mac`,
      value: round(macRps, 1),
      baseline: round(plainRps, 1),
      ratio: round(macRatio, 3),
      unit: "requests/s",
      goal: "ratio >= 0.5",
      goal_met: macRatio >= 0.5,
      ed25519_ratio: round(ratio, 3),
      concurrency: CONCURRENCY,
      seconds,
      rounds,
      round_ratios: roundRatios("mac"),
      ratio_is: "median of the per-round ratios; value and baseline: mean rates over all rounds",
      mac_p50_ms: round(macLatency.p50, 3),
      mac_p99_ms: round(macLatency.p99, 3),
      mac_errors: mac.errors,
      mac_cpu_cores: round(mac.cpuCores),
      cores: navigator.hardwareConcurrency,
    };
  } finally {
    worker.terminate();
    await Promise.all(servers.map((s) => s.shutdown()));
  }
}

type Mode = LoadJob["mode"];
const MODES: readonly Mode[] = ["unsigned", "signed", "mac"];

function rateOf(run: ClosedLoopReport): number {
  return run.completed / run.seconds;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The runs of one side as one: counts and latencies summed, CPU averaged over time. */
function merged(runs: LoadOutcome[]): LoadOutcome {
  const seconds = runs.reduce((sum, r) => sum + r.seconds, 0);
  return {
    completed: runs.reduce((sum, r) => sum + r.completed, 0),
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
    seconds,
    latenciesMs: runs.flatMap((r) => r.latenciesMs),
    firstError: runs.find((r) => r.firstError)?.firstError ?? "",
    cpuCores: runs.reduce((sum, r) => sum + r.cpuCores * r.seconds, 0) / seconds,
  };
}

/** A load run's report and the CPU this process (client and servers) used, in cores. */
type LoadOutcome = ClosedLoopReport & { cpuCores: number };

/**
 * Runs one load job in the worker and answers its outcome.
 * @throws {Error} when the worker fails or no request succeeded.
 */
async function load(worker: Worker, job: LoadJob, ticks: number): Promise<LoadOutcome> {
  const cpu0 = processCpuSeconds(Deno.pid, ticks);
  const wall0 = performance.now();
  const answer = await new Promise<LoadAnswer>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<LoadAnswer>) => resolve(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(`Load worker failed: ${event.message}`));
    };
    worker.postMessage(job);
  });
  if (!answer.ok) throw new Error(`Load worker failed: ${answer.error}`);
  const cpuCores = (processCpuSeconds(Deno.pid, ticks) - cpu0) /
    ((performance.now() - wall0) / 1000);
  const report = answer.report;
  if (report.completed === 0) {
    throw new Error(`No ${job.mode} request succeeded: ${report.firstError || "no answer"}`);
  }
  return { ...report, cpuCores };
}
