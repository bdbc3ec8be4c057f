/**
 * Simulated services heartbeating to a registry the way `src/health/heartbeat.ts`
 * does: each one beats, waits the interval jittered by up to 20 % either way,
 * and beats again. Only beats that start while measuring are counted.
 * @module
 */
import type { RegistryClient } from "../../src/client/registry_client.ts";

/** What the load measured while {@linkcode HeartbeatLoad.measuring} was on. */
export interface HeartbeatCounts {
  /** Heartbeats answered. */
  completed: number;
  /** Heartbeats that failed (no answer, refused, timed out). */
  errors: number;
  firstError: string;
  /** Latency of each answered heartbeat, ms. */
  latenciesMs: number[];
  /** How late each heartbeat left against its schedule: the generator's own lag, ms. */
  lagsMs: number[];
}

/** Heartbeats of many simulated services over one signed registry client. */
export class HeartbeatLoad {
  /** Count the beats that start from now on. */
  measuring = false;
  readonly counts: HeartbeatCounts = {
    completed: 0,
    errors: 0,
    firstError: "",
    latenciesMs: [],
    lagsMs: [],
  };
  #registry: RegistryClient;
  #intervalMs: number;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #inFlight = new Set<Promise<void>>();
  #stopped = false;

  /** Beats to `registry` every `intervalMs`, jittered. */
  constructor(registry: RegistryClient, intervalMs: number) {
    this.#registry = registry;
    this.#intervalMs = intervalMs;
  }

  /** Starts beating for service `id` (incarnation 1), first beat within one interval. */
  add(id: string): void {
    this.#schedule(id, Math.random() * this.#intervalMs);
  }

  /** Stops scheduling and waits for the beats in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    await Promise.all(this.#inFlight);
  }

  #schedule(id: string, delayMs: number): void {
    if (this.#stopped) return;
    const due = performance.now() + delayMs;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      const beat = this.#beat(id, due);
      this.#inFlight.add(beat);
      beat.finally(() => this.#inFlight.delete(beat));
    }, delayMs);
    this.#timers.add(timer);
  }

  async #beat(id: string, due: number): Promise<void> {
    const started = performance.now();
    const counted = this.measuring;
    try {
      await this.#registry.heartbeat(id, 1, { timeoutMs: this.#intervalMs });
      if (counted) {
        this.counts.completed++;
        this.counts.latenciesMs.push(performance.now() - started);
        this.counts.lagsMs.push(started - due);
      }
    } catch (error) {
      if (counted) {
        this.counts.errors++;
        this.counts.firstError ||= error instanceof Error ? error.message : String(error);
      }
    }
    this.#schedule(id, this.#intervalMs * (1 + (Math.random() * 0.4 - 0.2)));
  }
}
