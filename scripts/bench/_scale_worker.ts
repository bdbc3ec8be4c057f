/**
 * One load process of `scale` (a Web Worker, a thread of its own): many
 * lightweight service identities behind one {@linkcode HeartbeatAggregator},
 * which sends their beats to the registry in signed batches, as a bridge does.
 * Each identity beats every interval, jittered by up to 20 % either way, as
 * `src/health/heartbeat.ts` does; the local hop is a call, not HTTP.
 * @module
 */
import { FabricClient } from "../../src/client/fabric_client.ts";
import { RegistryClient } from "../../src/client/registry_client.ts";
import { importFabricKeys } from "../../src/crypto/keys.ts";
import { HeartbeatAggregator } from "../../src/health/aggregator.ts";

/** What the bench tells a worker. */
export type ScaleCommand =
  | {
    kind: "init";
    jwk: JsonWebKey;
    registry: { id: string; url: string };
    via: string;
    intervalMs: number;
  }
  | { kind: "add"; ids: string[] }
  | { kind: "measure"; on: boolean }
  | { kind: "stop" };

/** What a worker answers to `measure` off (and `stop`). */
export interface ScaleReport {
  beats: number;
  notOk: number;
  errors: number;
  firstError: string;
  /** Beat-to-commit of each beat in the window, ms. */
  commitMs: number[];
  /** How late each beat left against its schedule, ms. */
  lagMs: number[];
  /** Batches answered in the window. */
  batches: number;
  /** The longest wait of a beat for its batch, ms. */
  batchMaxMs: number;
}

interface WorkerScope {
  onmessage: ((event: MessageEvent<ScaleCommand>) => void) | null;
  postMessage(message: ScaleReport | { ready: true }): void;
}

const scope = self as unknown as WorkerScope;
let aggregator: HeartbeatAggregator | null = null;
let intervalMs = 2000;
let measuring = false;
let stopped = false;
let report: ScaleReport = fresh();
const timers = new Set<ReturnType<typeof setTimeout>>();

function fresh(): ScaleReport {
  return {
    beats: 0,
    notOk: 0,
    errors: 0,
    firstError: "",
    commitMs: [],
    lagMs: [],
    batches: 0,
    batchMaxMs: 0,
  };
}

function schedule(id: string, delayMs: number): void {
  if (stopped) return;
  const due = performance.now() + delayMs;
  const timer = setTimeout(() => {
    timers.delete(timer);
    const lag = performance.now() - due;
    const counted = measuring;
    aggregator!.beat({ id, incarnation: 1, sentAt: Date.now(), intervalMs }).then((verdict) => {
      if (!counted) return;
      report.beats++;
      report.lagMs.push(lag);
      if (verdict.result !== "ok" || verdict.state !== "ALIVE") report.notOk++;
    }, (error) => {
      if (!counted) return;
      report.errors++;
      report.firstError ||= String(error);
    });
    schedule(id, intervalMs * (1 + (Math.random() * 0.4 - 0.2)));
  }, delayMs);
  timers.add(timer);
}

scope.onmessage = async (event) => {
  const command = event.data;
  if (command.kind === "init") {
    const keys = await importFabricKeys(command.jwk);
    const registry = new RegistryClient(new FabricClient(keys, { timeoutMs: 10_000 }), [
      command.registry,
    ]);
    intervalMs = command.intervalMs;
    aggregator = new HeartbeatAggregator(registry, {
      via: command.via,
      onCommit: (latencies) => {
        if (!measuring) return;
        for (const ms of latencies) report.commitMs.push(ms);
        report.batches++;
        report.batchMaxMs = Math.max(report.batchMaxMs, ...latencies);
      },
    });
    scope.postMessage({ ready: true });
  } else if (command.kind === "add") {
    for (const id of command.ids) schedule(id, Math.random() * intervalMs);
    scope.postMessage({ ready: true });
  } else if (command.kind === "measure") {
    if (command.on) {
      report = fresh();
      measuring = true;
      scope.postMessage({ ready: true });
    } else {
      measuring = false;
      scope.postMessage(report);
    }
  } else {
    stopped = true;
    for (const timer of timers) clearTimeout(timer);
    await aggregator?.stop();
    scope.postMessage(report);
  }
};
