/**
 * A service's heartbeats to the registry: every interval, jittered by up to
 * 20 % either way so a fabric started at once does not beat in lockstep.
 * @module
 */
import type { RegistryClient } from "../client/registry_client.ts";
import { FabricRequestError } from "../client/fabric_client.ts";
import { log } from "../config/logging.ts";

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
  /** Called with each accepted heartbeat's answer (its `revocations` mark). Default: nothing. */
  onAnswer?: (answer: { revocations?: number }) => void;
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
  const beat = async (): Promise<void> => {
    try {
      const answer = await registry.heartbeat(service.id, service.incarnation, {
        timeoutMs: Math.max(1000, options.intervalMs),
        sentAt: Date.now(),
        ...(service.instance ? { instance: service.instance } : {}),
      });
      options.onAnswer?.(answer);
      if (failing) logger.info("Heartbeats reach the registry again");
      failing = false;
      lastOk = Date.now();
    } catch (error) {
      if (error instanceof FabricRequestError && error.status === 409) {
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
