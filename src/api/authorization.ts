/**
 * Rights after signatures (docs/protocol.md 2.12): once the signature
 * middleware has verified who signed a request, a rule decides whether that
 * signer may do it here. A refusal is a signed 403 that names the rule.
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Signer } from "../crypto/certificate.ts";
import type { SignatureVariables } from "./signature_middleware.ts";

/** A rule: null lets the request through, a string refuses it and says why. */
export type Rule = (signer: Signer, request: { method: string; path: string }) => string | null;

/** Options of {@linkcode authorization}. */
export interface AuthorizationOptions {
  /** The rule of this service. */
  rule: Rule;
  /** Paths that are not signed, so have no signer (bootstrap, health). */
  unsigned: readonly string[];
  /** Called with every refusal, the rule's or a handler's 403 (metrics, audit). Default: nothing. */
  onRefused?: (signer: Signer, request: { method: string; path: string }, why: string) => void;
  /** Called with every allowed request that changes the fabric (audit), once answered. */
  onChanged?: (signer: Signer, request: { method: string; path: string }, status: number) => void;
}

/** Requests the audit trail records when they are allowed: what changes the fabric. */
const AUDITED = [
  /^\/v1\/(spawn|stop|configure|renew)$/,
  /^\/v1\/registry\/services\/[^/]+(\/revoke|\/transitions)?$/,
];

/** The middleware that applies `options.rule`; it runs after {@linkcode signatures}. */
export function authorization(
  options: AuthorizationOptions,
): MiddlewareHandler<{ Variables: SignatureVariables }> {
  const unsigned = new Set(options.unsigned);
  return async (c, next) => {
    if (unsigned.has(c.req.path)) return await next();
    const signer = c.get("signer");
    const request = { method: c.req.method, path: c.req.path };
    const why = options.rule(signer, request);
    if (why !== null) {
      options.onRefused?.(signer, request, why);
      throw new HTTPException(403, { message: why });
    }
    await next();
    // A handler that decides further rights itself (the registry per record,
    // 2.12) refuses with 403 too: that is a refusal, counted and logged as one.
    if (c.res.status === 403 && options.onRefused) {
      options.onRefused(signer, request, await errorOf(c.res));
      return;
    }
    const reads = request.method === "GET" || request.method === "HEAD";
    if (!reads && AUDITED.some((p) => p.test(request.path))) {
      options.onChanged?.(signer, request, c.res.status);
    }
  };
}

/** Who a signer is, for messages and logs. */
export function signerName(signer: Signer): string {
  return signer.kind === "operator"
    ? "the operator"
    : `${signer.role} "${signer.id}" (incarnation ${signer.incarnation})`;
}

/**
 * Who signed the request a handler serves (set by the signature middleware).
 * Routes mounted without it (unit tests of routes alone) act for the operator.
 */
export function signerOf(c: Context): Signer {
  return (c.get("signer" as never) as Signer | undefined) ?? { kind: "operator" };
}

/** The `error` of a JSON error answer, read from a copy ("" when there is none). */
export async function errorOf(answer: Response): Promise<string> {
  const body = await answer.clone().json().catch(() => ({})) as { error?: unknown };
  return typeof body.error === "string" ? body.error : "";
}
