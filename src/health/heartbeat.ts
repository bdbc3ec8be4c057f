/**
 * A service's heartbeats to the registry: every interval, jittered by up to
 * 20 % either way so a fabric started at once does not beat in lockstep.
 * @module
 */
import type { RegistryClient } from "../client/registry_client.ts";
import { FabricRequestError } from "../client/fabric_client.ts";
import { log } from "../runtime/logging.ts";

/** Options of {@linkcode startHeartbeats}. */
export interface HeartbeatOptions {
  intervalMs: number;
  /** Called when the registry says this incarnation was replaced. */
  onReplaced: (reason: string) => void;
}

/** A running heartbeat loop; `stop()` is idempotent. */
export interface Heartbeats {
  stop(): void;
}

/** Starts heartbeating `id` at `incarnation`. */
export function startHeartbeats(
  registry: RegistryClient,
  service: { id: string; incarnation: number },
  options: HeartbeatOptions,
): Heartbeats {
  const logger = log("heartbeat");
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failing = false;
  const beat = async (): Promise<void> => {
    try {
      await registry.heartbeat(service.id, service.incarnation, {
        timeoutMs: Math.max(1000, options.intervalMs),
      });
      if (failing) logger.info("Heartbeats reach the registry again");
      failing = false;
    } catch (error) {
      if (error instanceof FabricRequestError && error.status === 409) {
        stopped = true;
        options.onReplaced(error.message);
        return;
      }
      if (!failing) logger.warn("Heartbeat failed: {error}", { error: String(error) });
      failing = true;
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
