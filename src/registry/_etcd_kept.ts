/**
 * Kept revocations on etcd (`RegistryStore.keptRevocations`): a forgotten
 * record's revocation lives on as one key, `<prefix>kept/<id>`, whose value
 * is the revocation and its end (`until`, ms since the epoch), put in the
 * same transaction that removes the record. Expired keys are removed by the
 * next read, a bounded number at a time.
 * @module
 */
import type { ServiceRecord } from "../types/mod.ts";
import type { EtcdClient, EtcdOp } from "./_etcd_client.ts";
import { type Revocation, revocationsOf } from "./revocations.ts";

/** etcd allows 128 operations per transaction; expired keys go this many at a time. */
const EXPIRED_PER_TXN = 100;

/** The operation that keeps `removed`'s revocation until `until`. */
export function keepOp(prefix: string, removed: ServiceRecord, until: number): EtcdOp {
  const value = JSON.stringify({ ...revocationsOf([removed])[0]!, until });
  return { put: { key: `${prefix}kept/${removed.id}`, value } };
}

/**
 * The kept revocations that last past `now`, by ID, with `since` only those
 * put after that revision (the key's revision is the forget's, after every
 * transition it removed); removes some expired ones (best effort).
 */
export async function readKept(
  etcd: EtcdClient,
  prefix: string,
  now: number,
  since = -1,
): Promise<Revocation[]> {
  const { kvs } = await etcd.range(`${prefix}kept/`, {
    prefix: true,
    ...(since >= 0 ? { minModRevision: since + 1 } : {}),
  });
  const kept: Revocation[] = [];
  const expired: EtcdOp[] = [];
  for (const kv of kvs) {
    const { until, ...revocation } = JSON.parse(kv.value) as Revocation & { until: number };
    if (until > now) kept.push(revocation);
    else if (expired.length < EXPIRED_PER_TXN) expired.push({ delete: { key: kv.key } });
  }
  // A replica that loses this race leaves them to the next read.
  if (expired.length > 0) await etcd.txn([], expired).catch(() => {});
  return kept.sort((a, b) => a.id.localeCompare(b.id));
}
