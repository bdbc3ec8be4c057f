/**
 * Many etcd lease renewals in few requests, sent to the leader; lease ends
 * recorded a few at a time.
 *
 * A renewal is not a raft write, but a follower forwards each one to the
 * leader in an HTTP request of its own, and one JSON API call per renewal
 * costs a request per heartbeat: at 10,000 services beating every 2 s that
 * is 5,000 requests a second, more than a three-member cluster on two cores
 * serves. `/v3/lease/keepalive` is a stream, so one POST may carry many
 * renewals (one JSON object each) and answers one line per renewal, with its
 * lease ID. etcd's HTTP/1.1 gateway stops reading the request once it has
 * sent its first answer, so a long body can be cut short: renewals left
 * unanswered are sent again in the next round (each round answers at least
 * one, or counts as a failure).
 * @module
 */
import { sleep } from "../config/retry.ts";
import { type EtcdClient, EtcdError } from "./_etcd_client.ts";

/** Renewals per request: small enough that the gateway reads most bodies whole. */
const CHUNK = 200;
/** Requests in flight at once: the leader renews streams in parallel. */
const PARALLEL = 6;
/** How long a known leader is trusted before it is asked for again, ms. */
const LEADER_MS = 10_000;
/** Time allowed for one request of renewals, ms. */
const REQUEST_MS = 3000;
/** How long one {@linkcode LeaseRenewer.renew} keeps trying, ms. */
const RENEW_MS = 10_000;

/** Renews leases in batches, at the etcd leader when it is known. */
export class LeaseRenewer {
  #etcd: EtcdClient;
  #leader: { endpoint: string | undefined; until: number } | null = null;

  /** A renewer over `etcd`'s members. */
  constructor(etcd: EtcdClient) {
    this.#etcd = etcd;
  }

  /**
   * Renews every lease of `ids` once; answers each lease's remaining TTL in
   * seconds, 0 when it has expired or is unknown.
   * @throws {EtcdError} when the leases cannot all be renewed within 10 s.
   */
  async renew(ids: readonly string[]): Promise<Map<string, number>> {
    const ttls = new Map<string, number>();
    let pending = [...new Set(ids)];
    const deadline = Date.now() + RENEW_MS;
    for (let round = 0; pending.length > 0; round++) {
      const endpoints = this.#etcd.endpoints;
      // The leader when known; after a round without progress, the next member.
      const endpoint = (await this.#leaderEndpoint()) ?? endpoints[round % endpoints.length]!;
      const chunks: string[][] = [];
      for (let i = 0; i < pending.length; i += CHUNK) chunks.push(pending.slice(i, i + CHUNK));
      let failure: unknown = null;
      for (let i = 0; i < chunks.length; i += PARALLEL) {
        await Promise.all(
          chunks.slice(i, i + PARALLEL).map((chunk) =>
            this.#renewChunk(endpoint, chunk, ttls).catch((error) => (failure = error))
          ),
        );
      }
      const left = pending.filter((id) => !ttls.has(id));
      if (left.length === pending.length) {
        this.#leader = { endpoint: undefined, until: Date.now() + LEADER_MS };
        if (Date.now() > deadline) {
          throw new EtcdError(`${left.length} etcd leases not renewed within ${RENEW_MS} ms`, {
            cause: failure,
          });
        }
        await sleep(100);
      }
      pending = left;
    }
    return ttls;
  }

  /**
   * One request of renewals; its answers go into `ttls` (a renewal left
   * unanswered is sent again in the next round of {@linkcode renew}).
   * @throws {EtcdError} when no member answers.
   */
  async #renewChunk(endpoint: string, chunk: string[], ttls: Map<string, number>): Promise<void> {
    const body = chunk.map((id) => JSON.stringify({ ID: id })).join("\n");
    const text = await this.#etcd.post("/v3/lease/keepalive", body, {
      endpoint,
      requestMs: REQUEST_MS,
    });
    for (const [id, ttl] of renewalsOf(text)) ttls.set(id, ttl);
  }

  /** The leader's client URL among the endpoints (undefined: unknown), asked for every 10 s. */
  async #leaderEndpoint(): Promise<string | undefined> {
    if (this.#leader && Date.now() < this.#leader.until) return this.#leader.endpoint;
    let endpoint: string | undefined;
    try {
      const status = await this.#etcd.call<{ leader?: string }>("/v3/maintenance/status", {}, {
        requestMs: 1000,
      });
      const { members } = await this.#etcd.call<
        { members?: { ID?: string; clientURLs?: string[] }[] }
      >("/v3/cluster/member/list", {});
      const urls = members?.find((m) => m.ID === status.leader)?.clientURLs ?? [];
      const origins = new Set(urls.map((url) => new URL(url).origin));
      endpoint = this.#etcd.endpoints.find((e) => origins.has(new URL(e).origin));
    } catch {
      // No leader known: the renewals go to any member, which forwards them.
    }
    this.#leader = { endpoint, until: Date.now() + LEADER_MS };
    return endpoint;
  }
}

/** Lease ends recorded at once (each a transaction). */
const ENDS_AT_ONCE = 8;

/**
 * Lease ends waiting to be recorded, at most 8 at a time: when many leases
 * end together (a cluster stalled past the TTL), a write for each at once
 * would pile thousands of transactions on etcd, time them out and make the
 * stall worse.
 */
export class LeaseEnds {
  #record: (id: string, incarnation: number) => Promise<void>;
  #waiting = new Map<string, number>();
  #running = 0;

  /** Ends recorded by `record`, which must not throw. */
  constructor(record: (id: string, incarnation: number) => Promise<void>) {
    this.#record = record;
  }

  /** The lease of `id`'s `incarnation` ended. */
  add(id: string, incarnation: number): void {
    this.#waiting.set(id, incarnation);
    while (this.#running < ENDS_AT_ONCE && this.#waiting.size > 0) {
      this.#running++;
      void (async () => {
        for (const [next, ended] of this.#waiting) {
          this.#waiting.delete(next);
          await this.#record(next, ended);
        }
      })().finally(() => this.#running--);
    }
  }
}

/**
 * The renewals answered in a keepalive stream's text: one JSON object a
 * line, `{"result":{"ID":..,"TTL":..}}`, TTL absent for an expired or unknown
 * lease; lines that are not answers (an error) are skipped.
 */
export function renewalsOf(text: string): Map<string, number> {
  const ttls = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const result = (JSON.parse(line) as { result?: { ID?: string; TTL?: string } }).result;
      if (result?.ID) ttls.set(result.ID, Number(result.TTL ?? 0));
    } catch {
      // A line cut short by a dropped connection: its lease is sent again.
    }
  }
  return ttls;
}
