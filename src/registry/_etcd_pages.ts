/**
 * Reading a whole etcd prefix in bounded pages at one revision.
 * @module
 */
import { b64, type EtcdClient, type EtcdKv, kvOf, prefixEnd, type RawKv } from "./_etcd_client.ts";

/**
 * Time allowed for one page, ms: a page is bounded (at most its page size of
 * keys), so it may take longer than a single-key call on a loaded member
 * without making anyone wait unboundedly.
 */
const PAGE_MS = 5000;

/** Options of {@linkcode rangePages}. */
export interface RangePagesOptions {
  /** Keys per request. */
  pageSize: number;
  /** Keys and metadata without values. Default false. */
  keysOnly?: boolean;
  /** The revision to read at. Default: the first page's (the newest). */
  revision?: number;
}

/**
 * Every key under `prefix` at one revision, in key order, `pageSize` keys per
 * request: each page is a small, bounded read for etcd (a limit without
 * sorting or revision filters; those make etcd read the whole prefix for each
 * request), and all pages show the store at one revision, so they are
 * consistent with each other.
 * @throws {EtcdError} when a page cannot be read (a compaction past the
 * revision included: read again from the start).
 */
export async function* rangePages(
  etcd: EtcdClient,
  prefix: string,
  options: RangePagesOptions,
): AsyncGenerator<{ kvs: EtcdKv[]; revision: number }> {
  let revision = options.revision ?? 0;
  let from = prefix;
  for (;;) {
    const answer = await etcd.call<
      { kvs?: RawKv[]; more?: boolean; header?: { revision?: string } }
    >("/v3/kv/range", {
      key: b64(from),
      range_end: prefixEnd(prefix),
      limit: String(options.pageSize),
      ...(revision ? { revision: String(revision) } : {}),
      ...(options.keysOnly ? { keys_only: true } : {}),
    }, { requestMs: PAGE_MS });
    revision ||= Number(answer.header?.revision ?? 0);
    const kvs = (answer.kvs ?? []).map(kvOf);
    yield { kvs, revision };
    const lastKey = kvs.at(-1)?.key;
    if (!answer.more || lastKey === undefined) return;
    // The smallest key after the last one: the same bytes and a zero byte.
    from = `${lastKey}\0`;
  }
}
