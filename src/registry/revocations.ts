/**
 * The revocation list (docs/protocol.md 2.11): a certificate dies with its
 * incarnation. An incarnation is revoked once its record is STOPPED, FAILED
 * or LOST, and every older incarnation once a newer one begins (RESTARTING,
 * or a new record put over it). Services learn the list from the registry:
 * whole at first, then the changes since the sequence number they have seen,
 * which every heartbeat answer carries ({@linkcode revocationPage}).
 * `fabricd revoke` makes a record LOST on purpose ({@linkcode revokeService}).
 * @module
 */
import type { ServiceRecord, ServiceState, Transition } from "../types/mod.ts";
import type { Registry } from "./registry.ts";
import { PENDING_STATES } from "./state_machine.ts";
import { UnknownServiceError } from "./store.ts";
import { FabricError } from "../types/errors.ts";

/**
 * One revocation: every incarnation of `id` up to `incarnation`. `cascade`
 * (set by `fabricd revoke`) revokes what those incarnations certified too:
 * every chain through them. An incarnation that merely ended (stopped,
 * failed, lost, restarted) leaves its children's certificates valid until
 * they expire or are renewed by its successor.
 */
export interface Revocation {
  id: string;
  incarnation: number;
  cascade?: true;
}

/** The reason prefix of the transitions `fabricd revoke` writes. */
export const REVOKED_REASON = "revoked: ";

/** States that end an incarnation's certificate. */
const ENDING: readonly ServiceState[] = ["STOPPED", "FAILED", "LOST"];

/** The revocations that the current records imply. */
export function revocationsOf(records: readonly ServiceRecord[]): Revocation[] {
  const out: Revocation[] = [];
  for (const r of records) {
    const upTo = ENDING.includes(r.state) ? r.incarnation : r.incarnation - 1;
    const cascade = r.state === "LOST" && r.lastFailure.startsWith(REVOKED_REASON);
    if (upTo >= 1) out.push({ id: r.id, incarnation: upTo, ...(cascade ? { cascade } : {}) });
  }
  return out;
}

/** The revocation one transition implies, or null. */
export function revocationOf(transition: Transition): Revocation | null {
  if (ENDING.includes(transition.to)) {
    const cascade = transition.to === "LOST" && transition.reason.startsWith(REVOKED_REASON);
    return {
      id: transition.id,
      incarnation: transition.incarnation,
      ...(cascade ? { cascade } : {}),
    };
  }
  // Any change of incarnation N means every incarnation below N has ended.
  if (transition.incarnation > 1) {
    return { id: transition.id, incarnation: transition.incarnation - 1 };
  }
  return null;
}

/**
 * The revocations of `registry`: from the records, and the kept ones of
 * forgotten records, when `since` is undefined; else from the transitions
 * after `since` (at most `limit`) and the records forgotten after it (whose
 * transitions are gone). `seq` is where the next call continues from: the
 * registry's mark once the page holds everything up to it, so that the
 * transitions a forget removed do not leave the caller behind the mark.
 */
export async function revocationPage(
  registry: Registry,
  since?: number,
  limit = 5000,
): Promise<{ seq: number; revoked: Revocation[]; more: boolean }> {
  const store = registry.store;
  if (since === undefined) {
    const seq = registry.lastSeq;
    const revoked = [
      ...revocationsOf(await store.list()),
      ...await store.keptRevocations(registry.now()),
    ];
    return { seq, revoked, more: false };
  }
  // Read first: every change up to the mark is stored before the mark moves.
  const mark = registry.lastSeq;
  const page = await store.transitionsSince(since, limit);
  const more = page.length === limit;
  const revoked = [
    ...page.map(revocationOf).filter((r): r is Revocation => r !== null),
    // A later page may carry some of them again: a revocation read twice is the same.
    ...await store.keptRevocations(registry.now(), since),
  ];
  const last = page.at(-1)?.seq ?? since;
  return { seq: more ? last : Math.max(last, mark), revoked, more };
}

/**
 * Cuts service `id` off at once (`fabricd revoke`): its record goes to LOST
 * (through DEAD when it runs, through FAILED while it starts), which revokes
 * its incarnation everywhere, with what it certified (`cascade`). A root
 * service (no parent) is refused: it signs with the root key, which only a
 * rotation takes back.
 * @throws {UnknownServiceError} when there is no such record.
 * @throws {FabricError} (409) for a root service.
 */
export async function revokeService(
  registry: Registry,
  id: string,
  reason: string,
): Promise<ServiceRecord> {
  let record = await registry.get(id);
  if (!record) throw new UnknownServiceError(id);
  if (record.parent === "") {
    throw new FabricError(
      `Service "${id}" is a root service (started by "fabricd up"): it signs with the root key, ` +
        'which a revocation cannot take back: rotate the key with "fabricd rotate", or stop ' +
        'the fabric with "fabricd stop --all"',
      { status: 409 },
    );
  }
  const why = `${REVOKED_REASON}${reason}`;
  // A running incarnation dies first, one still starting fails first: both may then be LOST.
  const first = ["ALIVE", "SUSPECT"].includes(record.state)
    ? "DEAD"
    : PENDING_STATES.includes(record.state)
    ? "FAILED"
    : null;
  if (first) {
    record = await registry.transition(id, {
      incarnation: record.incarnation,
      to: first,
      reason: why,
    });
  }
  if (record.state !== "LOST" && record.state !== "STOPPED") {
    record = await registry.transition(id, {
      incarnation: record.incarnation,
      to: "LOST",
      reason: why,
    });
  }
  return record;
}
