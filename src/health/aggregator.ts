/**
 * Heartbeat aggregation (issue 16): a bridge or a pilot manager takes the
 * heartbeats of its children locally (`POST /v1/heartbeats`) and sends them up
 * as one signed batch (`POST /v1/registry/heartbeats`), so the registry
 * handles a few batches a second instead of one request per service.
 *
 * - A beat waits at most a quarter of its sender's interval before its batch
 *   leaves: the registry sees it late by that much at most, which keeps
 *   SUSPECT (2 intervals of silence) clear of jitter and DEAD within the TTL
 *   plus a quarter interval.
 * - The registry answers a verdict per beat (ok, replaced, unknown). A child
 *   gets its verdict on its next local beat; a beat the aggregator cannot vouch
 *   for (a new instance or incarnation, or a child silent for over 1.5
 *   intervals) waits for its own batch, sent within 20 ms, and gets that
 *   verdict at once, so a replaced instance that wakes up learns it on its
 *   first beat, as without aggregation.
 * - A child that stops beating is simply not in the next batch: the
 *   registry's TTL decides, as before. The aggregator forgets it after 10
 *   intervals of silence and logs that.
 * @module
 */
import { signerOf } from "../api/authorization.ts";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { jsonBody } from "../api/validate.ts";
import type { RegistryClient } from "../client/registry_client.ts";
import { log } from "../config/logging.ts";
import type { Role } from "../types/mod.ts";
import { type BeatVerdict, type LocalBeat, localBeatSchema } from "../types/wire.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";

/** Roles whose children beat to them, not to the registry. */
export const AGGREGATING_ROLES: readonly Role[] = ["bridge", "pilot-manager"];

/** Options of {@linkcode HeartbeatAggregator}. */
export interface AggregatorOptions {
  /** The aggregating service's ID (`via` of its batches). */
  via: string;
  /** Children held at most; a new one beyond is refused (503). Default 100,000. */
  maxChildren?: number;
  /** Beats per request to the registry. Default 2,000. */
  chunk?: number;
  /** Interval assumed of a beat that does not say its own, ms. Default 2,000. */
  defaultIntervalMs?: number;
  /** Called after each batch is answered, with each beat's wait for it (ms). Default: none. */
  onCommit?: (latenciesMs: number[]) => void;
}

interface Queued {
  beat: LocalBeat;
  receivedAt: number;
  waiters: ((verdict: BeatVerdict | Error) => void)[];
}

interface Known {
  incarnation: number;
  instance: string;
  intervalMs: number;
  lastBeat: number;
  verdict: BeatVerdict;
}

/** The aggregator of one service; see the module doc. `stop()` is idempotent. */
export class HeartbeatAggregator {
  /** The registry's revocation mark as of the last batch, passed on to the children. */
  revocations: number | undefined;
  /** The fabric's current root as of the last batch, passed on to the children. */
  root: string | undefined;
  #registry: RegistryClient;
  #options: Required<Omit<AggregatorOptions, "onCommit">> & Pick<AggregatorOptions, "onCommit">;
  #pending = new Map<string, Queued>();
  #known = new Map<string, Known>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #due = Infinity;
  #flushing: Promise<void> = Promise.resolve();
  #stopped = false;
  #logger = log("heartbeat");

  /** An aggregator sending its batches to `registry`. */
  constructor(registry: RegistryClient, options: AggregatorOptions) {
    this.#registry = registry;
    this.#options = { maxChildren: 100_000, chunk: 2000, defaultIntervalMs: 2000, ...options };
  }

  /** Children heard from in the last 10 intervals. */
  get children(): number {
    return this.#known.size;
  }

  /**
   * Takes one child's beat: answers the verdict the registry last gave this
   * instance, or waits for this beat's own when there is none to trust.
   * @throws {HTTPException} 503 when stopped or full, 502 when the batch failed.
   */
  beat(beat: LocalBeat): Promise<BeatVerdict> {
    if (this.#stopped) throw new HTTPException(503, { message: "Aggregator stopped: beat upward" });
    const now = Date.now();
    const known = this.#known.get(beat.id);
    const intervalMs = beat.intervalMs ?? this.#options.defaultIntervalMs;
    const same = known !== undefined && known.incarnation === beat.incarnation &&
      known.instance === (beat.instance ?? "");
    // A verdict that this instance must stop is final: no need to ask again.
    if (same && known.verdict.result === "replaced") return Promise.resolve(known.verdict);
    const trusted = same && known.verdict.result === "ok" &&
      now - known.lastBeat <= 1.5 * intervalMs;
    if (!known && this.#known.size + this.#pending.size >= this.#options.maxChildren) {
      throw new HTTPException(503, { message: "Aggregator full: beat to the registry directly" });
    }
    const queued: Queued = {
      beat,
      receivedAt: now,
      waiters: this.#pending.get(beat.id)?.waiters ?? [],
    };
    this.#pending.set(beat.id, queued);
    this.#schedule(now + (trusted ? intervalMs / 4 : 20));
    if (trusted) return Promise.resolve(known.verdict);
    return new Promise((resolve, reject) => {
      queued.waiters.push((v) => v instanceof Error ? reject(v) : resolve(v));
    });
  }

  /** Sends what is queued now and stops; beats after this are refused. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#flush();
  }

  #schedule(at: number): void {
    if (at >= this.#due) return;
    clearTimeout(this.#timer);
    this.#due = at;
    this.#timer = setTimeout(() => {
      this.#due = Infinity;
      void this.#flush();
    }, Math.max(0, at - Date.now()));
  }

  /** Sends the queued beats (one flush at a time), in chunks. */
  #flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      const batch = [...this.#pending.values()];
      this.#pending.clear();
      for (let i = 0; i < batch.length; i += this.#options.chunk) {
        await this.#send(batch.slice(i, i + this.#options.chunk));
      }
      this.#forgetSilent();
    });
    return this.#flushing;
  }

  async #send(batch: Queued[]): Promise<void> {
    const beats = batch.map(({ beat: { intervalMs: _i, ...up } }) => up);
    let verdicts: BeatVerdict[];
    try {
      const answer = await this.#registry.heartbeatMany(this.#options.via, beats, {
        timeoutMs: 5000,
      });
      verdicts = answer.results;
      if (answer.revocations !== undefined) this.revocations = answer.revocations;
      const root = (answer as { root?: unknown }).root;
      if (typeof root === "string") this.root = root;
    } catch (error) {
      this.#logger.warn("A batch of {n} heartbeats did not reach the registry: {error}", {
        n: batch.length,
        error: String(error),
      });
      const failed = new HTTPException(502, { message: `Registry not reached: ${error}` });
      for (const q of batch) for (const waiter of q.waiters) waiter(failed);
      return;
    }
    const committed = Date.now();
    this.#options.onCommit?.(batch.map((q) => committed - q.receivedAt));
    batch.forEach((q, i) => {
      const verdict = verdicts[i] ?? { id: q.beat.id, result: "unknown", message: "no verdict" };
      this.#known.set(q.beat.id, {
        incarnation: q.beat.incarnation,
        instance: q.beat.instance ?? "",
        intervalMs: q.beat.intervalMs ?? this.#options.defaultIntervalMs,
        lastBeat: q.receivedAt,
        verdict,
      });
      for (const waiter of q.waiters) waiter(verdict);
    });
  }

  #forgetSilent(): void {
    const now = Date.now();
    for (const [id, known] of this.#known) {
      if (now - known.lastBeat <= 10 * known.intervalMs || this.#pending.has(id)) continue;
      this.#known.delete(id);
      this.#logger.info("Child {id} stopped beating {s} s ago: the registry's TTL decides", {
        id,
        s: Math.round((now - known.lastBeat) / 1000),
      });
    }
  }
}

/**
 * `POST /heartbeats` (under `/v1`) over `aggregator`: a child's beat, answered
 * like a lone heartbeat (200 `{state, incarnation}`, 409 replaced, 404 unknown).
 */
export function aggregatorRoutes(aggregator: HeartbeatAggregator): Hono {
  const app = new Hono();
  app.post("/heartbeats", jsonBody(localBeatSchema), async (c) => {
    const beat = c.req.valid("json");
    // A child beats for itself only (docs/protocol.md 2.12).
    const signer = signerOf(c);
    if (signer.kind === "service" && signer.id !== beat.id) {
      throw new HTTPException(403, {
        message:
          `Refused by rule "beat-self": "${signer.id}" beats only for itself, not "${beat.id}"`,
      });
    }
    const verdict = await aggregator.beat(beat);
    if (verdict.result === "ok") {
      return c.json({
        state: verdict.state,
        incarnation: verdict.incarnation,
        ...(aggregator.revocations === undefined ? {} : { revocations: aggregator.revocations }),
        ...(aggregator.root === undefined ? {} : { root: aggregator.root }),
      });
    }
    throw new HTTPException(verdict.result === "replaced" ? 409 : 404, {
      message: verdict.message,
    });
  });
  return app;
}
