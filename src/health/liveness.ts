/**
 * Failure detection in the registry: a service whose heartbeats stop becomes
 * SUSPECT, then DEAD, each with the reason and time stored.
 * @module
 */
import type { Registry } from "../registry/registry.ts";
import { log } from "../config/logging.ts";
import { clearInterval, setInterval } from "../base/timers.ts";

/** Heartbeat timing, shared by the services and the registry. */
export interface LivenessSettings {
  /** How often services heartbeat, ms. Default 2000. */
  heartbeatMs: number;
  /** Silence after which a service is SUSPECT, ms. Default 2 x heartbeatMs. */
  suspectMs: number;
  /** Silence after which a service is DEAD (the TTL), ms. Default 3 x heartbeatMs. */
  ttlMs: number;
}

/** Settings derived from a heartbeat interval, with optional overrides. */
export function livenessSettings(
  heartbeatMs = 2000,
  overrides: Partial<LivenessSettings> = {},
): LivenessSettings {
  const ttlMs = overrides.ttlMs ?? heartbeatMs * 3;
  return {
    heartbeatMs,
    ttlMs,
    suspectMs: overrides.suspectMs ?? Math.min(heartbeatMs * 2, ttlMs),
  };
}

/** A running sweeper; `stop()` is idempotent. */
export interface LivenessSweeper {
  stop(): void;
  /** Runs one sweep now (tests and benchmarks). */
  sweep(): Promise<void>;
}

/** Options of {@linkcode startLivenessSweeper}. */
export interface LivenessSweeperOptions {
  /**
   * Called after each sweep that completed (one still in the grace after a
   * start or a pause included), with how long it took, ms; not after a sweep
   * that failed. Default: none.
   */
  onSweep?: (durationMs: number) => void;
}

/**
 * Starts sweeping `registry` every eighth of the suspect time (at most every 250 ms).
 * Nobody is declared anything until a full TTL after the sweeper started, so a
 * restarted registry does not mass-declare deaths (DESIGN.md, issue 4). The
 * same grace starts again when the sweeper notices that it was paused itself
 * (a gap of more than a heartbeat interval between two of its sweeps: SIGSTOP,
 * swap, a stopped VM, a slow disk): the silence it saw was its own (issue 18).
 */
export function startLivenessSweeper(
  registry: Registry,
  settings: LivenessSettings,
  options: LivenessSweeperOptions = {},
): LivenessSweeper {
  const logger = log("liveness");
  let graceUntil = registry.now() + settings.ttlMs;
  let lastSweep = registry.now();
  let running = false;
  const sweepOnce = async (): Promise<void> => {
    const now = registry.now();
    const gap = now - lastSweep;
    lastSweep = now;
    if (gap > settings.heartbeatMs) {
      graceUntil = Math.max(graceUntil, now + settings.ttlMs);
      logger.warn(
        "The registry was paused for {seconds} s: nobody is declared SUSPECT or DEAD for one TTL ({ttl} s)",
        { seconds: Math.round(gap / 100) / 10, ttl: settings.ttlMs / 1000 },
      );
    }
    if (now < graceUntil) return;
    for (const record of await registry.store.live()) {
      // Silence counts from the last heartbeat (or registration), and never from
      // before this sweeper started: a restarted registry waits a full TTL.
      const since = Math.max(record.lastHeartbeat || record.updated, graceUntil - settings.ttlMs);
      const silence = now - since;
      const seconds = (silence / 1000).toFixed(1);
      try {
        if (silence > settings.ttlMs) {
          await registry.transition(record.id, {
            incarnation: record.incarnation,
            to: "DEAD",
            reason: `No heartbeat for ${seconds} s (TTL ${settings.ttlMs / 1000} s)`,
          });
        } else if (silence > settings.suspectMs && record.state === "ALIVE") {
          await registry.transition(record.id, {
            incarnation: record.incarnation,
            to: "SUSPECT",
            reason: `No heartbeat for ${seconds} s`,
          });
        }
      } catch (error) {
        // A heartbeat or a new incarnation raced the sweep; the next sweep sees it.
        logger.debug("Sweep skipped {id}: {error}", { id: record.id, error: String(error) });
      }
    }
  };
  const sweep = async (): Promise<void> => {
    if (running) return;
    running = true;
    const started = performance.now();
    try {
      await sweepOnce();
      options.onSweep?.(performance.now() - started);
    } catch (error) {
      // A store that cannot be read this time is tried again at the next sweep.
      logger.warn("Sweep failed: {error}", { error: String(error) });
    } finally {
      running = false;
    }
  };
  const timer = setInterval(
    () => void sweep(),
    Math.min(250, Math.max(20, settings.suspectMs / 8)),
  );
  return { stop: () => clearInterval(timer), sweep };
}
