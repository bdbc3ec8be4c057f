/**
 * The revocation list (docs/protocol.md 2.11): a certificate dies with its
 * incarnation. An incarnation is revoked once its record is STOPPED, FAILED
 * or LOST, and every older incarnation once a newer one begins (RESTARTING,
 * or a new record put over it). Services learn the list from the registry:
 * whole at first, then the changes since the sequence number they have seen,
 * which every heartbeat answer carries.
 * @module
 */
import type { ServiceRecord, ServiceState, Transition } from "../types/mod.ts";

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
