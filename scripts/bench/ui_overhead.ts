/**
 * `ui-overhead`: what watching the fabric costs the registry. On one local
 * fabric (registry, root spawner, queue, pub/sub, agent; heartbeats every
 * 2 s), the registry's CPU time (utime + stime of `/proc/PID/stat`) over a
 * window with `fabricd ui` open, against the mean of a window before and one
 * after with no UI at all.
 *
 * "Open" is what a browser and Prometheus do: the page's first requests, an
 * SSE client on `/api/events`, `/api/tasks` every 2 s and `/api/pilots` every
 * 10 s (as `src/ui/_page.ts` does), and `/metrics` every 5 s with the bearer
 * token. The UI runs in this process; only the registry's CPU is compared.
 * @module
 */
import { createUiServer, randomToken } from "../../src/ui/ui_server.ts";
import type { SpawnResult } from "../../src/types/mod.ts";
import { withBenchFabric } from "./_local_fabric.ts";
import {
  type Benchmark,
  type BenchResult,
  clockTicksPerSecond,
  envNumber,
  processCpuSeconds,
  round,
  say,
  sleep,
} from "./_harness.ts";

const NAME = "ui-overhead";

/** The `ui-overhead` benchmark; `BENCH_SECONDS` overrides the 30 s window. */
export const uiOverhead: Benchmark = {
  name: NAME,
  description:
    "registry CPU with fabricd ui open (SSE, page calls, /metrics every 5 s) vs none (goal ratio <= 1.2)",
  run,
};

async function run(): Promise<BenchResult> {
  const windowMs = envNumber("BENCH_SECONDS", 30) * 1000;
  const ticks = await clockTicksPerSecond();
  return await withBenchFabric("ui", 2000, async (local, dir) => {
    const spawn = (body: Record<string, unknown>): Promise<SpawnResult> =>
      local.client.call<SpawnResult>(local.spawner, { method: "POST", path: "/v1/spawn", body }, {
        timeoutMs: 60_000,
      });
    const queue = await spawn({ role: "queue" });
    const pubsub = await spawn({ role: "pubsub" });
    await spawn({ role: "agent", options: { queue: queue.id, pubsub: pubsub.id, cores: "2" } });
    const records = await local.registry.list();
    const pid = records.find((r) => r.role === "registry")!.pid;
    say(NAME, `${records.length} services; registry pid ${pid}; settling 5 s`);
    await sleep(5000);
    const cpuMs = async (): Promise<number> => {
      const before = processCpuSeconds(pid, ticks);
      await sleep(windowMs);
      return (processCpuSeconds(pid, ticks) - before) * 1000;
    };
    const before = await cpuMs();
    say(NAME, `no UI: registry used ${round(before)} ms CPU in ${windowMs / 1000} s`);
    const bearer = randomToken();
    const ui = createUiServer({
      keys: local.keys,
      client: local.client,
      registry: local.registry,
      dir,
      bearer,
      loginToken: randomToken(),
    });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, ui.app.fetch);
    const view = openView(`http://127.0.0.1:${server.addr.port}`, bearer);
    let open: number;
    try {
      open = await cpuMs();
    } finally {
      await view.close();
      ui.close();
      await server.shutdown();
    }
    say(
      NAME,
      `UI open: registry used ${round(open)} ms CPU in ${
        windowMs / 1000
      } s (${view.requests} requests, ${view.events} events, ${view.failures} failed)`,
    );
    await sleep(2000);
    const after = await cpuMs();
    say(NAME, `no UI again: registry used ${round(after)} ms CPU in ${windowMs / 1000} s`);
    const baseline = (before + after) / 2;
    const ratio = open / Math.max(baseline, 1000 / ticks);
    return {
      name: NAME,
      value: round(open),
      unit: `ms registry CPU per ${windowMs / 1000} s`,
      baseline: round(baseline),
      ratio: round(ratio, 3),
      goal: "ratio <= 1.2",
      goal_met: ratio <= 1.2,
      without_ui_ms: [round(before), round(after)],
      view_requests: view.requests,
      view_failures: view.failures,
      services: records.length,
      clock_ticks_per_s: ticks,
    };
  });
}

/** A browser tab and Prometheus on the UI at `base`, until `close()`. */
interface View {
  requests: number;
  failures: number;
  events: number;
  close(): Promise<void>;
}

function openView(base: string, bearer: string): View {
  const stop = new AbortController();
  const headers = { authorization: `Bearer ${bearer}` };
  const view: View = { requests: 0, failures: 0, events: 0, close: async () => {} };
  const get = async (path: string): Promise<void> => {
    view.requests++;
    try {
      const answer = await fetch(`${base}${path}`, { headers, signal: stop.signal });
      await answer.arrayBuffer();
      if (!answer.ok) view.failures++;
    } catch {
      if (!stop.signal.aborted) view.failures++;
    }
  };
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      stop.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  const every = (ms: number, path: string): Promise<void> =>
    (async () => {
      while (!stop.signal.aborted) {
        await get(path);
        await pause(ms);
      }
    })();
  const stream = (async () => {
    try {
      const answer = await fetch(`${base}/api/events`, { headers, signal: stop.signal });
      for await (const chunk of answer.body ?? new ReadableStream<Uint8Array>()) {
        view.events += new TextDecoder().decode(chunk).match(/^event: /gm)?.length ?? 0;
      }
    } catch {
      // Ended by close().
    }
  })();
  const loops = [
    ...["/", "/app.js", "/api/services"].map(get),
    every(2000, "/api/tasks"),
    every(10_000, "/api/pilots"),
    every(5000, "/metrics"),
  ];
  view.close = async () => {
    stop.abort();
    await Promise.allSettled([stream, ...loops]);
  };
  return view;
}
