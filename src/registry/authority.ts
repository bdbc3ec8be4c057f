/**
 * Who may write which registry record (docs/protocol.md 2.12): the operator
 * any; a service its own record (at its certified incarnation) and those of
 * its descendants; a new record only for its own child. Fencing by
 * incarnation still applies on top (`state_machine.ts`).
 * @module
 */
import { governs, isChildRoute, type Signer } from "../crypto/certificate.ts";
import type { ServiceRecord } from "../types/mod.ts";

function who(signer: Signer): string {
  return signer.kind === "operator" ? "the operator" : `"${signer.id}"`;
}

/** Why `signer` may not put `record` over `existing`, or null. */
export function refusePut(
  signer: Signer,
  existing: ServiceRecord | undefined,
  record: ServiceRecord,
): string | null {
  if (signer.kind === "operator") return null;
  // Under the signer: its child by route, named by the record's own ID.
  const underSigner = record.parent === signer.id && record.route.at(-1) === record.id &&
    isChildRoute(signer.route, record.route);
  if (!existing) {
    return underSigner
      ? null
      : `Refused by rule "registry-new": ${who(signer)} records only its own children`;
  }
  const moved = record.parent !== existing.parent ||
    record.route.join("/") !== existing.route.join("/");
  // A record moves only under its signer, who governed it before: an ancestor
  // adopting the child of a lost service (docs/failures.md).
  const adopted = underSigner && governs(signer, existing.route);
  if (moved && !adopted) {
    return `Refused by rule "registry-place": a record's parent and route do not change`;
  }
  return refuseChange(signer, existing, record.incarnation);
}

/**
 * Why `signer` may not change `existing` (a transition, its sessions, a
 * heartbeat) at `incarnation`, or null.
 */
export function refuseChange(
  signer: Signer,
  existing: ServiceRecord | undefined,
  incarnation?: number,
): string | null {
  if (signer.kind === "operator") return null;
  if (!existing) return null;
  if (!governs(signer, existing.route)) {
    return `Refused by rule "registry-subtree": ${
      who(signer)
    } writes only its own record and its descendants'`;
  }
  if (
    signer.id === existing.id && incarnation !== undefined && incarnation !== signer.incarnation
  ) {
    return `Refused by rule "registry-self": "${signer.id}" is certified for incarnation ${signer.incarnation}, not ${incarnation}`;
  }
  return null;
}

/** Why `signer` may not report `existing` unreachable, or null: ancestors and peers may. */
export function refuseReport(signer: Signer, existing: ServiceRecord | undefined): string | null {
  if (signer.kind === "operator" || !existing) return null;
  if (governs(signer, existing.route) || signer.peers.includes(existing.id)) return null;
  return `Refused by rule "registry-report": ${
    who(signer)
  } neither governs nor uses "${existing.id}"`;
}
