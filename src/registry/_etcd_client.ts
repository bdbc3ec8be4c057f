/**
 * A small client for etcd's v3 JSON API (the gRPC gateway) over `fetch`:
 * key-value ranges, transactions, leases and watches. It holds every member's
 * URL and moves to the next one when a member does not answer or has no
 * leader, so a registry keeps working through an etcd failover.
 *
 * The npm etcd clients speak gRPC through native modules that do not load
 * under Deno; the JSON gateway is part of every etcd since 3.3 (docs/registry.md).
 * @module
 */
import { sleep } from "../config/retry.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";

/** One key-value pair as etcd answers it (keys and values decoded). */
export interface EtcdKv {
  key: string;
  value: string;
  modRevision: number;
  createRevision: number;
  lease: string;
}

/** A watch event. */
export interface EtcdEvent {
  type: "PUT" | "DELETE";
  kv: EtcdKv;
  prev?: EtcdKv;
}

/** An etcd member that failed, or an answer that is not what etcd should say. */
export class EtcdError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "EtcdError";
  }
}

/** etcd compacted away the revision a watch wanted: the caller must read afresh. */
export class WatchCompactedError extends EtcdError {
  /** Builds the error. */
  constructor(compactRevision: number) {
    super(`etcd compacted its history up to revision ${compactRevision}: read the state afresh`);
    this.name = "WatchCompactedError";
  }
}

/** A transaction operation (request_put, request_delete_range, request_range). */
export type EtcdOp =
  | { put: { key: string; value: string; lease?: string } }
  | { delete: { key: string; prefix?: boolean } };

/** A transaction comparison. */
export type EtcdCompare =
  | { key: string; target: "MOD"; modRevision: number }
  | { key: string; target: "VERSION"; version: number };

/** Per-call choices of {@linkcode EtcdClient.call} and {@linkcode EtcdClient.post}. */
export interface EtcdCallOptions {
  /** Time allowed for one HTTP request to one member, ms. Default: the client's `requestMs`. */
  requestMs?: number;
  /** The member to try first (one of the client's endpoints); the others follow on failure. */
  endpoint?: string | undefined;
}

/** A watch stream silent this long is resumed elsewhere, ms. */
const IDLE_MS = 5000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Base64 of a UTF-8 string, as etcd's JSON API wants keys and values. */
export function b64(text: string): string {
  let binary = "";
  for (const byte of encoder.encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function unb64(text: string | undefined): string {
  if (!text) return "";
  return decoder.decode(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)));
}

/** The key just after every key starting with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): string {
  const bytes = encoder.encode(prefix);
  const end = bytes.slice();
  end[end.length - 1]!++;
  let binary = "";
  for (const byte of end) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** One key-value pair as etcd's JSON API answers it (base64). */
export interface RawKv {
  key?: string;
  value?: string;
  mod_revision?: string;
  create_revision?: string;
  lease?: string;
}

/** A raw key-value pair decoded. */
export function kvOf(raw: RawKv): EtcdKv {
  return {
    key: unb64(raw.key),
    value: unb64(raw.value),
    modRevision: Number(raw.mod_revision ?? 0),
    createRevision: Number(raw.create_revision ?? 0),
    lease: raw.lease ?? "0",
  };
}

/** Options of {@linkcode EtcdClient}. */
export interface EtcdClientOptions {
  /** How long one call keeps trying the members, ms. Default 10000. */
  retryMs?: number;
  /**
   * Time allowed for one HTTP request to one member, ms, doubled for each
   * round over all members (up to 8x, within `retryMs`). Default 1000 (an
   * election's length).
   */
  requestMs?: number;
}

/** etcd's v3 JSON API with failover between members. */
export class EtcdClient {
  #endpoints: string[];
  #current = 0;
  #retryMs: number;
  #requestMs: number;

  /**
   * A client for the members at `endpoints` (`http://host:port`).
   * @throws {TypeError} when no endpoint is given.
   */
  constructor(endpoints: string[], options: EtcdClientOptions = {}) {
    if (endpoints.length === 0) throw new TypeError("etcd needs at least one endpoint");
    this.#endpoints = endpoints;
    this.#retryMs = options.retryMs ?? 10_000;
    this.#requestMs = options.requestMs ?? 1000;
  }

  /**
   * Leaves `failed` for the next member, unless a concurrent call already
   * did: many calls failing on one member at once must move on once, not each
   * advance the index (which could land them back on the failed member).
   */
  #moveOn(failed: string): void {
    if (this.#endpoints[this.#current] === failed) {
      this.#current = (this.#current + 1) % this.#endpoints.length;
    }
  }

  /** The member in use now. */
  get endpoint(): string {
    return this.#endpoints[this.#current]!;
  }

  /**
   * Time allowed for request `attempt`: each round over all members doubles
   * it (up to 8x, never past `deadline` unless that is below the base), so a
   * member that does not answer is left after the first, but a loaded cluster
   * is not abandoned at the same limit.
   */
  #allowed(requestMs: number | undefined, attempt: number, deadline: number): number {
    const base = requestMs ?? this.#requestMs;
    const round = Math.floor(attempt / this.#endpoints.length);
    return Math.max(base, Math.min(base * 2 ** Math.min(3, round), deadline - Date.now()));
  }

  /** Every member's client URL, as given. */
  get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  /**
   * POSTs a JSON API call, moving to the next member on a network error, a
   * timeout or an answer that says the member cannot serve (no leader).
   * @throws {EtcdError} when no member serves within the retry time, or etcd
   * refuses the request itself.
   */
  async call<T>(path: string, body: unknown, options: EtcdCallOptions = {}): Promise<T> {
    const text = await this.post(path, JSON.stringify(body), options);
    return (text ? JSON.parse(text) : {}) as T;
  }

  /**
   * POSTs a raw body (one JSON object, or several for a stream such as
   * `/v3/lease/keepalive`) and answers the raw text, with the failover of
   * {@linkcode call}.
   * @throws {EtcdError} when no member serves within the retry time, or etcd
   * refuses the request itself.
   */
  async post(path: string, body: string, options: EtcdCallOptions = {}): Promise<string> {
    const deadline = Date.now() + this.#retryMs;
    let last = "";
    let preferred = options.endpoint && this.#endpoints.includes(options.endpoint)
      ? options.endpoint
      : undefined;
    for (let attempt = 0;; attempt++) {
      const endpoint = preferred ?? this.#endpoints[this.#current]!;
      try {
        const answer = await fetch(`${endpoint}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout(this.#allowed(options.requestMs, attempt, deadline)),
        });
        const text = await answer.text();
        if (answer.ok) return text;
        last = `${endpoint}: HTTP ${answer.status} ${text.slice(0, 200)}`;
        if (answer.status < 500 && !/leader|timed out|unavailable/i.test(text)) {
          throw new EtcdError(`etcd refused ${path}: ${last}`);
        }
      } catch (error) {
        if (error instanceof EtcdError) throw error;
        last = `${endpoint}: ${error instanceof Error ? error.message : error}`;
      }
      if (preferred) preferred = undefined;
      else this.#moveOn(endpoint);
      if (Date.now() > deadline) {
        throw new EtcdError(
          `No etcd member answered ${path} within ${this.#retryMs} ms (last: ${last})`,
        );
      }
      if (attempt % this.#endpoints.length === this.#endpoints.length - 1) {
        await sleep(100);
      }
    }
  }

  /** Keys starting with `prefix` (or the one `key`), sorted by modification. */
  async range(
    key: string,
    options: { prefix?: boolean; minModRevision?: number; limit?: number } = {},
  ): Promise<{ kvs: EtcdKv[]; revision: number }> {
    const body: Record<string, unknown> = { key: b64(key) };
    if (options.prefix) body.range_end = prefixEnd(key);
    if (options.minModRevision) body.min_mod_revision = String(options.minModRevision);
    if (options.limit) body.limit = String(options.limit);
    if (options.prefix) {
      body.sort_target = "MOD";
      body.sort_order = "ASCEND";
    }
    const answer = await this.call<{ kvs?: RawKv[]; header?: { revision?: string } }>(
      "/v3/kv/range",
      body,
    );
    return { kvs: (answer.kvs ?? []).map(kvOf), revision: Number(answer.header?.revision ?? 0) };
  }

  /** A transaction; answers whether the comparisons held and the revision. */
  async txn(
    compare: EtcdCompare[],
    success: EtcdOp[],
  ): Promise<{ succeeded: boolean; revision: number }> {
    const answer = await this.call<{ succeeded?: boolean; header?: { revision?: string } }>(
      "/v3/kv/txn",
      {
        compare: compare.map((c) =>
          c.target === "MOD"
            ? {
              key: b64(c.key),
              target: "MOD",
              result: "EQUAL",
              mod_revision: String(c.modRevision),
            }
            : { key: b64(c.key), target: "VERSION", result: "EQUAL", version: String(c.version) }
        ),
        success: success.map((op) =>
          "put" in op
            ? {
              request_put: {
                key: b64(op.put.key),
                value: b64(op.put.value),
                ...(op.put.lease ? { lease: op.put.lease } : {}),
              },
            }
            : {
              request_delete_range: {
                key: b64(op.delete.key),
                ...(op.delete.prefix ? { range_end: prefixEnd(op.delete.key) } : {}),
              },
            }
        ),
      },
    );
    return { succeeded: answer.succeeded === true, revision: Number(answer.header?.revision ?? 0) };
  }

  /** Grants a lease of `ttlSeconds`; answers its ID. */
  async leaseGrant(ttlSeconds: number): Promise<string> {
    const answer = await this.call<{ ID?: string }>("/v3/lease/grant", { TTL: String(ttlSeconds) });
    if (!answer.ID) throw new EtcdError("etcd granted no lease ID");
    return answer.ID;
  }

  /** Keeps a lease alive once; answers its remaining TTL (0 when it has expired). */
  async leaseKeepAlive(id: string): Promise<number> {
    const answer = await this.call<{ result?: { TTL?: string } }>("/v3/lease/keepalive", {
      ID: id,
    });
    return Number(answer.result?.TTL ?? 0);
  }

  /** Revokes a lease (its keys go); an unknown lease is not an error. */
  async leaseRevoke(id: string): Promise<void> {
    // Best effort: a lease not revoked expires by its TTL all the same.
    await this.call("/v3/lease/revoke", { ID: id }).catch(() => {});
  }

  /**
   * Watches every key under `prefix` from `startRevision`, calling `onEvents`
   * with each batch (one revision's events together), until `signal` aborts.
   * Reconnects (to the next member if need be) from the revision after the
   * last one seen.
   * @throws {WatchCompactedError} when etcd no longer has that revision.
   */
  async watch(
    prefix: string,
    startRevision: number,
    onEvents: (events: EtcdEvent[], revision: number) => void,
    signal: AbortSignal,
  ): Promise<void> {
    let next = startRevision;
    while (!signal.aborted) {
      const endpoint = this.#endpoints[this.#current]!;
      // A member cut off from the others (or frozen) keeps the stream open and
      // silent; etcd's own progress notices come only every 10 minutes. So a
      // stream idle for IDLE_MS is dropped and resumed on the next member.
      const connection = new AbortController();
      let idle = setTimeout(() => connection.abort(), IDLE_MS);
      const stop = () => connection.abort();
      signal.addEventListener("abort", stop);
      try {
        const answer = await fetch(`${endpoint}/v3/watch`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            create_request: {
              key: b64(prefix),
              range_end: prefixEnd(prefix),
              start_revision: String(next),
              prev_kv: true,
            },
          }),
          signal: connection.signal,
        });
        if (!answer.ok || !answer.body) throw new EtcdError(`watch answered HTTP ${answer.status}`);
        let buffer = "";
        for await (const chunk of answer.body.pipeThrough(new TextDecoderStream())) {
          clearTimeout(idle);
          idle = setTimeout(() => connection.abort(), IDLE_MS);
          buffer += chunk;
          let end: number;
          while ((end = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, end).trim();
            buffer = buffer.slice(end + 1);
            if (!line) continue;
            const message = JSON.parse(line) as {
              result?: {
                header?: { revision?: string };
                events?: { type?: string; kv?: RawKv; prev_kv?: RawKv }[];
                compact_revision?: string;
                canceled?: boolean;
              };
            };
            const result = message.result;
            if (!result) continue;
            if (result.canceled) {
              throw new WatchCompactedError(Number(result.compact_revision ?? 0));
            }
            const events = (result.events ?? []).map((e): EtcdEvent => ({
              type: e.type === "DELETE" ? "DELETE" : "PUT",
              kv: kvOf(e.kv ?? {}),
              ...(e.prev_kv ? { prev: kvOf(e.prev_kv) } : {}),
            }));
            if (events.length === 0) continue;
            const revision = Math.max(...events.map((e) => e.kv.modRevision));
            next = revision + 1;
            onEvents(events, revision);
          }
        }
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof WatchCompactedError) throw error;
        this.#moveOn(endpoint);
        await sleep(200);
      } finally {
        clearTimeout(idle);
        signal.removeEventListener("abort", stop);
      }
    }
  }
}
