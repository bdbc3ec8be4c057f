/**
 * The rule of one service's API (docs/protocol.md 2.12): what the operator,
 * the service's ancestors, its data-plane peers and everyone else may do
 * here. Registry writes are decided again by the registry, record by record
 * (`registry/authority.ts`).
 * @module
 */
import { type Rule, signerName } from "../api/authorization.ts";
import { governs, isChildRoute } from "../crypto/certificate.ts";

/** Paths any fabric member may use: reading, and the registry (which decides per record). */
const OPEN = [/^\/v1\/status$/, /^\/v1\/metrics$/, /^\/v1\/session$/, /^\/v1\/registry\//];
/** The common management routes; every other route is the role's own. */
const COMMON = [/^\/v1\/spawn$/, /^\/v1\/stop$/, /^\/v1\/sessions\//, /^\/v1\/connect$/];

/** What the rule needs to know of the service. */
export interface ServicePlace {
  id: string;
  /** The route from the root down to this service, once configured. */
  route(): readonly string[] | null;
  /**
   * The parent's route, as this service's own certificate states it (the
   * certificate's route less this service): `[]` for a root service, null
   * before it is bootstrapped.
   */
  parentRoute(): readonly string[] | null;
}

/** The rule of service `self`. */
export function serviceRule(self: ServicePlace): Rule {
  return (signer, request) => {
    if (signer.kind === "operator") return null;
    const { method, path } = request;
    if (OPEN.some((p) => p.test(path))) return null;
    if (path === "/v1/logs" && method === "GET") return null;
    // The handler checks that the signer is a current child of this service.
    if (path === "/v1/renew" && method === "POST") return null;
    const who = signerName(signer);
    if (path === "/v1/configure") {
      // By route, as "governs": a certificate that borrows the parent's ID
      // elsewhere in the tree is not the parent.
      const parentRoute = self.parentRoute();
      return parentRoute !== null && parentRoute.length > 0 &&
          parentRoute.length === signer.route.length &&
          parentRoute.every((id, i) => signer.route[i] === id)
        ? null
        : `Refused by rule "configure": only the parent of "${self.id}" configures it, not ${who}`;
    }
    const route = self.route() ?? [self.id];
    if (governs(signer, route)) return null;
    // A child beats to its aggregating parent (the aggregator checks it beats for itself).
    if (path === "/v1/heartbeats" && method === "POST" && isChildRoute(route, signer.route)) {
      return null;
    }
    // A child configured by its bootstrap answer reports ready (the handover checks the spawn).
    if (path === "/v1/ready") {
      return isChildRoute(route, signer.route)
        ? null
        : `Refused by rule "ready": only a child of "${self.id}" reports ready to it, not ${who}`;
    }
    if (COMMON.some((p) => p.test(path))) {
      return `Refused by rule "subtree": ${who} is not an ancestor of "${self.id}"`;
    }
    if (signer.peers.includes(self.id)) return null;
    return `Refused by rule "peers": ${who} is neither an ancestor of "${self.id}" nor certified to use it`;
  };
}
