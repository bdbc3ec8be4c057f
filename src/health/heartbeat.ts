/**
 * A service's heartbeats to the registry: every interval, jittered by up to
 * 20 % either way so a fabric started at once does not beat in lockstep.
 * @module
 */
import type { RegistryClient } from "../client/registry_client.ts";
import { type FabricClient, FabricRequestError, type Target } from "../client/fabric_client.ts";
import { log } from "../config/logging.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";

/** Options of {@linkcode startHeartbeats}. */
export interface HeartbeatOptions {
  intervalMs: number;
  /**
   * Called when the registry says this incarnation was replaced, or when no
   * heartbeat got through for `fenceMs`: the registry has surely declared this
   * instance dead by then, and its parent may have started another.
   */
  onReplaced: (reason: string) => void;
  /** Silence after which the service fences itself off, ms. Default 20 x intervalMs. */
  fenceMs?: number;
  /**
   * Sends a beat to the aggregating parent instead (docs/failures.md
   * "Aggregated heartbeats"); throws like the registry would (409: replaced).
   * A beat it cannot deliver otherwise goes to the registry directly.
   * Default: none, every beat goes to the registry.
   */
  via?: HeartbeatRelay;
  /**
   * Called with each accepted heartbeat's answer: its `revocations` mark and
   * the fabric's current `root` (docs/protocol.md 2.14). Default: nothing.
   */
  onAnswer?: (answer: BeatAnswer) => void;
}

/** What a heartbeat answer tells a service besides its state. */
export interface BeatAnswer {
  /** The registry's revocation mark. */
  revocations?: number;
  /** The fingerprint of the fabric's current root key. */
  root?: string;
}

/** One beat as sent to an aggregating parent (`POST /v1/heartbeats`). */
export interface RelayedBeat {
  id: string;
  incarnation: number;
  instance?: string;
  sentAt: number;
  intervalMs: number;
}

/** Delivers a beat to an aggregating parent within `timeoutMs`. */
export type HeartbeatRelay = (
  beat: RelayedBeat,
  timeoutMs: number,
) => Promise<BeatAnswer>;

/** A {@linkcode HeartbeatRelay} to `parent` over a signed `client`. */
export function parentRelay(client: FabricClient, parent: Target): HeartbeatRelay {
  return async (beat, timeoutMs) =>
    await client.call<BeatAnswer>(
      parent,
      { method: "POST", path: "/v1/heartbeats", body: beat },
      { timeoutMs },
    );
}

/** A running heartbeat loop; `stop()` is idempotent. */
export interface Heartbeats {
  stop(): void;
}

/**
 * Starts heartbeating `id` at `incarnation`. Each beat carries the sending
 * `instance` (when given) and its send time, so the registry never lets a
 * beat of a dead instance, or one sent before a death, revive a record.
 */
export function startHeartbeats(
  registry: RegistryClient,
  service: { id: string; incarnation: number; instance?: string },
  options: HeartbeatOptions,
): Heartbeats {
  const logger = log("heartbeat");
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failing = false;
  let lastOk = Date.now();
  const fenceMs = options.fenceMs ?? options.intervalMs * 20;
  const timeoutMs = Math.max(1000, options.intervalMs);
  let direct = false;
  const send = async (sentAt: number): Promise<BeatAnswer> => {
    const instance = service.instance ? { instance: service.instance } : {};
    if (options.via) {
      try {
        const { id, incarnation } = service;
        const answer = await options.via(
          { id, incarnation, sentAt, intervalMs: options.intervalMs, ...instance },
          timeoutMs,
        );
        if (direct) logger.info("Heartbeats go through the parent again");
        direct = false;
        return answer;
      } catch (error) {
        if (error instanceof FabricRequestError && error.status === 409) throw error;
        // The parent is down or restarting: this beat goes to the registry itself.
        if (!direct) {
          logger.info("Parent did not take a heartbeat ({error}): beating to the registry", {
            error: String(error),
          });
        }
        direct = true;
      }
    }
    return await registry.heartbeat(service.id, service.incarnation, {
      timeoutMs,
      sentAt,
      ...instance,
    });
  };
  const beat = async (): Promise<void> => {
    try {
      const began = Date.now();
      const answer = await send(began).catch(async (error) => {
        // A connection closed under the beat at once (a pooled one the
        // service's front closed to make room): once more, on a fresh one.
        const quick = Date.now() - began < timeoutMs / 2;
        if (stopped || !quick || !(error instanceof FabricRequestError) || error.status !== 0) {
          throw error;
        }
        return await send(Date.now());
      });
      options.onAnswer?.(answer);
      if (failing) logger.info("Heartbeats reach the registry again");
      failing = false;
      lastOk = Date.now();
    } catch (error) {
      // A beat still in flight when stop() was called says nothing: the
      // service's own stop may have ended its record meanwhile (a 409 then),
      // and an ended loop must not report it replaced (exit 1, restarted).
      if (stopped) return;
      // 409: replaced or ended; 401 "revoked": this identity is cut off (fabricd
      // revoke); 401 "retired": its chain starts at a root rotated out.
      const revoked = error instanceof FabricRequestError && error.status === 401 &&
        /revoked|retired fabric root/.test(error.message);
      if ((error instanceof FabricRequestError && error.status === 409) || revoked) {
        stopped = true;
        options.onReplaced(error.message);
        return;
      }
      if (!failing) logger.warn("Heartbeat failed: {error}", { error: String(error) });
      failing = true;
      if (Date.now() - lastOk > fenceMs) {
        // Cut off for many TTLs: the fabric has declared this instance dead
        // and may run a replacement; two instances of one ID must not live on.
        stopped = true;
        options.onReplaced(
          `no heartbeat reached the registry for ${Math.round((Date.now() - lastOk) / 1000)} s`,
        );
        return;
      }
    }
    schedule();
  };
  const schedule = (): void => {
    if (stopped) return;
    const jitter = 1 + (Math.random() * 0.4 - 0.2);
    timer = setTimeout(() => void beat(), options.intervalMs * jitter);
  };
  schedule();
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
