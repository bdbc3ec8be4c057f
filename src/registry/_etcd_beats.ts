/**
 * Heartbeat times on the etcd store, shared between registry replicas so
 * `lastHeartbeat` is right on every replica. Display only: liveness itself
 * is the leases'.
 * @module
 */
import { log } from "../config/logging.ts";
import type { EtcdClient } from "./_etcd_client.ts";
import { clearInterval, setInterval } from "../base/timers.ts";

/** How often a replica shares the heartbeat times it saw, ms. */
const BEATS_FLUSH_MS = 5000;

/**
 * The newest heartbeat time of each service that this replica knows: its
 * own, and the other replicas' from their `beats/<replica>` key (one per
 * replica, on a lease, so a replica that dies leaves nothing behind).
 */
export class SharedBeats {
  #etcd: EtcdClient;
  #prefix: string;
  #key: string;
  #beats = new Map<string, number>();
  /** Heartbeats this replica took since its last flush. */
  #fresh = new Map<string, number>();
  #lease = "";
  #timer: ReturnType<typeof setInterval> | undefined;
  #logger = log("etcd");

  /** Beats under `prefix` (the store's `beats/`), this replica's key named `replica`. */
  constructor(etcd: EtcdClient, prefix: string, replica: string) {
    this.#etcd = etcd;
    this.#prefix = prefix;
    this.#key = `${prefix}${replica}`;
  }

  /** Starts sharing every 5 s; idempotent. */
  start(): void {
    this.#timer ??= setInterval(() => void this.#flush(), BEATS_FLUSH_MS);
    this.#timer.unref();
  }

  /** Stops sharing; idempotent. */
  stop(): void {
    clearInterval(this.#timer);
  }

  /** A heartbeat this replica took. */
  note(id: string, at: number): void {
    this.#raise(id, at);
    this.#fresh.set(id, at);
  }

  /** The newest heartbeat time known of `id`, 0 when none. */
  of(id: string): number {
    return this.#beats.get(id) ?? 0;
  }

  /** Takes a watched `beats/` key's value when `key` is one; answers whether it was. */
  apply(key: string, value: string): boolean {
    if (!key.startsWith(this.#prefix)) return false;
    try {
      for (const [id, at] of Object.entries(JSON.parse(value) as Record<string, number>)) {
        this.#raise(id, at);
      }
    } catch {
      // A malformed value (not a replica of this version): display only, skip it.
    }
    return true;
  }

  #raise(id: string, at: number): void {
    this.#beats.set(id, Math.max(this.#beats.get(id) ?? 0, at));
  }

  async #flush(): Promise<void> {
    if (this.#fresh.size === 0) return;
    const beats = Object.fromEntries(this.#fresh);
    this.#fresh.clear();
    try {
      // One lease for this replica's key, renewed with each flush: no lease churn.
      if (!this.#lease || await this.#etcd.leaseKeepAlive(this.#lease) <= 0) {
        this.#lease = await this.#etcd.leaseGrant(Math.ceil((BEATS_FLUSH_MS * 3) / 1000));
      }
      await this.#etcd.txn([], [{
        put: { key: this.#key, value: JSON.stringify(beats), lease: this.#lease },
      }]);
    } catch (error) {
      this.#logger.debug("Heartbeat times not shared: {error}", { error: String(error) });
    }
  }
}
