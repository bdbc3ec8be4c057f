/**
 * `slow-clients`: the latency of a signed `GET /v1/status` while 1,000
 * half-open connections (a partial request head, then silence) are held
 * against the service's guarded server (`serveGuarded`, production deadlines),
 * against the same latency with no slow connections, measured in the same run.
 * It also measures what the front costs: signed throughput through the front
 * against `Deno.serve` on the port directly, 16 concurrent clients in a worker.
 *
 * The process needs about 1,100 file descriptors (`ulimit -n`); it says so
 * and stops when the limit is lower.
 * @module
 */
import { createApp } from "../../src/api/app.ts";
import { type GuardedServer, serveGuarded } from "../../src/api/guarded_server.ts";
import type { ServiceHandlers } from "../../src/api/service_handlers.ts";
import { type FabricKeys, generateFabricKeys, signRequest } from "../../src/crypto/mod.ts";
import { ReplayCache } from "../../src/crypto/replay_cache.ts";
import type { ServiceStatus } from "../../src/types/mod.ts";
import { type Benchmark, type BenchResult, envNumber, round, say, summarize } from "./_harness.ts";
import type { LoadAnswer, LoadJob } from "./_load_worker.ts";

const NAME = "slow-clients";
const SERVICE_ID = "spw-bench5100";
const SLOW = 1000;

/** The `slow-clients` benchmark; `BENCH_RUNS` sets the requests timed per side (default 200). */
export const slowClients: Benchmark = {
  name: NAME,
  description:
    "signed request latency with 1,000 half-open connections held vs none (goal: p99 <= 100 ms)",
  run,
};

async function run(): Promise<BenchResult> {
  const requests = envNumber("BENCH_RUNS", 200);
  const limit = openFileLimit();
  if (limit !== undefined && limit < SLOW + 200) {
    throw new Error(`ulimit -n is ${limit}: raise it to ${SLOW + 200} or more to run ${NAME}`);
  }
  const keys = await generateFabricKeys();
  const app = createApp({
    serviceId: SERVICE_ID,
    keys: () => keys,
    replayCache: new ReplayCache(),
    handlers: { status: () => ({ id: SERVICE_ID }) as ServiceStatus } as ServiceHandlers,
  });
  // Production deadlines; limits raised so that one peer (loopback) may hold them all.
  const server = await serveGuarded(app.fetch, {
    hostname: "127.0.0.1",
    port: 0,
    maxConnectionsPerPeer: SLOW + 100,
    maxConnections: SLOW + 100,
  });
  const direct = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  const slow: Deno.TcpConn[] = [];
  try {
    say(NAME, `guarded server on :${server.addr.port}, ulimit -n ${limit ?? "unknown"}`);
    const url = `http://127.0.0.1:${server.addr.port}/v1/status`;
    await timedRequests(url, keys, 20);
    const baseline = summarize(await timedRequests(url, keys, requests));
    say(NAME, `no slow clients: p50 ${round(baseline.p50)} ms, p99 ${round(baseline.p99)} ms`);
    const head = new TextEncoder().encode("GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    for (let i = 0; i < SLOW; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
      slow.push(conn);
      await conn.write(head);
    }
    const held = server.front.stats().open;
    say(NAME, `${held} connections open (${SLOW} half-open, the client's own keep-alive)`);
    const loaded = await timedRequests(url, keys, requests);
    const withSlow = summarize(loaded);
    const within100 = loaded.filter((ms) => ms <= 100).length / loaded.length;
    say(
      NAME,
      `with ${SLOW} half-open: p50 ${round(withSlow.p50)} ms, p99 ${round(withSlow.p99)} ms, ` +
        `${round(within100 * 100, 1)} % within 100 ms`,
    );
    for (const conn of slow.splice(0)) conn.close();

    const throughput = await frontCost(server, direct, keys);
    const ratio = withSlow.p50 / baseline.p50;
    return {
      name: NAME,
      value: round(withSlow.p50, 3),
      baseline: round(baseline.p50, 3),
      ratio: round(ratio, 3),
      unit: "ms (p50 signed GET /v1/status)",
      goal: "p99 with 1,000 half-open connections <= 100 ms",
      goal_met: withSlow.p99 <= 100,
      requests,
      half_open_held: held,
      p99_ms: round(withSlow.p99, 3),
      baseline_p99_ms: round(baseline.p99, 3),
      within_100ms: round(within100, 4),
      front_rps: round(throughput.front, 1),
      direct_rps: round(throughput.direct, 1),
      front_cost_ratio: round(throughput.front / throughput.direct, 3),
      cores: navigator.hardwareConcurrency,
      open_file_limit: limit ?? null,
    };
  } finally {
    for (const conn of slow) conn.close();
    await server.shutdown();
    await direct.shutdown();
  }
}

/** Latencies (ms) of `count` signed requests, one after the other. */
async function timedRequests(url: string, keys: FabricKeys, count: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const began = performance.now();
    const signed = await signRequest({ method: "GET", url, body: new Uint8Array() }, keys, {
      target: SERVICE_ID,
    });
    const answer = await fetch(url, { headers: signed.headers });
    await answer.arrayBuffer();
    if (answer.status !== 200) throw new Error(`Signed request got ${answer.status}`);
    latencies.push(performance.now() - began);
  }
  return latencies;
}

/** Signed requests per second through the front and straight to `Deno.serve`. */
async function frontCost(
  server: GuardedServer,
  direct: Deno.HttpServer<Deno.NetAddr>,
  keys: FabricKeys,
): Promise<{ front: number; direct: number }> {
  const seconds = envNumber("BENCH_SECONDS", 3);
  const worker = new Worker(new URL("./_load_worker.ts", import.meta.url), { type: "module" });
  const load = async (port: number): Promise<number> => {
    const job: LoadJob = {
      mode: "signed",
      url: `http://127.0.0.1:${port}`,
      path: "/v1/status",
      target: SERVICE_ID,
      jwk: keys.jwk,
      workers: 16,
      warmupMs: 500,
      durationMs: seconds * 1000,
    };
    const answer = await new Promise<LoadAnswer>((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<LoadAnswer>) => resolve(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(`Load worker failed: ${event.message}`));
      };
      worker.postMessage(job);
    });
    if (!answer.ok) throw new Error(`Load worker failed: ${answer.error}`);
    return answer.report.completed / answer.report.seconds;
  };
  try {
    const directRps = await load(direct.addr.port);
    const frontRps = await load(server.addr.port);
    say(
      NAME,
      `signed throughput, 16 concurrent: ${round(frontRps, 0)} req/s through the front, ` +
        `${round(directRps, 0)} req/s straight to Deno.serve`,
    );
    return { front: frontRps, direct: directRps };
  } finally {
    worker.terminate();
  }
}

/** The soft open-file limit from `/proc/self/limits`, when readable. */
function openFileLimit(): number | undefined {
  try {
    const text = Deno.readTextFileSync("/proc/self/limits");
    const value = Number(/^Max open files\s+(\d+)/m.exec(text)?.[1]);
    return value > 0 ? value : undefined;
  } catch {
    return undefined;
  }
}
