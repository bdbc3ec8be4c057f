/**
 * Which records a listing shows: `fabricd status --role R --state S --under ID`
 * and `GET /v1/registry/services?role=&state=&under=`, so a fabric of 10,000
 * services is filtered where the records are, not after shipping them all.
 * @module
 */
import type { ServiceRecord } from "../types/mod.ts";

/** What a listing keeps; an absent field keeps everything. */
export interface RecordFilter {
  /** Roles kept. */
  roles?: readonly string[] | undefined;
  /** States kept. */
  states?: readonly string[] | undefined;
  /** Keep only this service and every service below it (by `parent`). */
  under?: string | undefined;
}

/** The records of `records` that `filter` keeps, in their order. */
export function filterRecords(
  records: readonly ServiceRecord[],
  filter: RecordFilter,
): ServiceRecord[] {
  const subtree = filter.under === undefined ? undefined : subtreeIds(records, [filter.under]);
  const roles = filter.roles?.length ? new Set(filter.roles) : undefined;
  const states = filter.states?.length ? new Set(filter.states) : undefined;
  return records.filter((r) =>
    (!subtree || subtree.has(r.id)) && (!roles || roles.has(r.role)) &&
    (!states || states.has(r.state))
  );
}

/**
 * The IDs of `roots` and of every record below them, following `parent`
 * links (a root the records do not hold is kept as it is given).
 */
export function subtreeIds(
  records: readonly ServiceRecord[],
  roots: readonly string[],
): Set<string> {
  const children = new Map<string, string[]>();
  for (const r of records) {
    if (!r.parent) continue;
    const list = children.get(r.parent);
    if (list) list.push(r.id);
    else children.set(r.parent, [r.id]);
  }
  const seen = new Set<string>(roots);
  const queue = [...roots];
  while (queue.length > 0) {
    for (const kid of children.get(queue.pop()!) ?? []) {
      if (!seen.has(kid)) {
        seen.add(kid);
        queue.push(kid);
      }
    }
  }
  return seen;
}
