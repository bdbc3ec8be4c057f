/**
 * The management API of every service: Hono on `Deno.serve`, signed requests
 * and answers, validated bodies, one error handler.
 * @module
 */
import { MacSessions } from "../crypto/mac_sessions.ts";
import { sessionRoute } from "./session_route.ts";
import { authorization, errorOf, type Rule, signerName } from "./authorization.ts";
import { Hono, type MiddlewareHandler } from "hono";
import { TrieRouter } from "hono/router/trie-router";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { FabricKeys } from "../crypto/keys.ts";
import type { ReplayCache } from "../crypto/replay_cache.ts";
import { log } from "../config/logging.ts";
import { serviceRoutes } from "./service_routes.ts";
import type { ServiceHandlers } from "./service_handlers.ts";
import {
  BootstrapRefusedError,
  FabricError,
  RateLimitedError,
  SpawnFailedError,
} from "../types/errors.ts";
import { signatures } from "./signature_middleware.ts";
import { BOOTSTRAP_BODY_BYTES, boundedBodies } from "./body_limit.ts";
import type { RoleSlot } from "./role_slot.ts";
import { type ServiceMetrics, signatureFailureReason } from "../metrics/service_metrics.ts";
import { metricsRoutes, requestMetrics } from "./request_metrics.ts";
import { isRelayedAnswer } from "./relay.ts";
import { RateLimiter } from "./rate_limiter.ts";

/** Largest request body accepted, in bytes (HTTP 413 above it). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** What {@linkcode createApp} needs. */
export interface AppDeps {
  serviceId: string;
  keys: () => FabricKeys | null;
  replayCache: ReplayCache;
  handlers: ServiceHandlers;
  /** Where the role plugs in once it has started. Default: a service without a role. */
  role?: RoleSlot;
  /** Largest request body in bytes. Default {@linkcode MAX_BODY_BYTES}. */
  maxBodyBytes?: number;
  /** How long a signed request waits for keys during bootstrap, ms. Default 2000. */
  keysWaitMs?: number;
  /**
   * Signed requests created before this time (seconds since the epoch) are
   * refused: the process's start less the clock skew. Default: no bound.
   */
  notBeforeSeconds?: number;
  /** This service's metrics: counted here and served at `GET /v1/metrics`. Default: none. */
  metrics?: ServiceMetrics;
  /** Who may do what here, after the signature is verified (docs/protocol.md 2.12). Default: any member. */
  rule?: Rule;
  /** The MAC sessions served (docs/protocol.md 2.13). Default: a table of this app's own. */
  sessions?: MacSessions;
}

/**
 * Builds the management API app of one service.
 * @throws {TypeError} when `serviceId` is empty.
 */
export function createApp(deps: AppDeps): Hono {
  const logger = log("api");
  // Routes are added after the first request (the role's, once it starts),
  // which the trie router allows and the default one does not.
  const app = new Hono({ router: new TrieRouter() });
  const maxSize = deps.maxBodyBytes ?? MAX_BODY_BYTES;
  const metrics = deps.metrics;
  if (metrics) app.use(requestMetrics(metrics, { serviceId: deps.serviceId }));
  // Before the role's front: the relay's own 401s are refusals of this
  // service, logged with the same rate limit as the signature check's.
  app.use(auditedRefusals());
  // The relay (the role slot's front) verifies, limits and streams the
  // bodies it passes on itself, before anything buffers them.
  if (deps.role) app.use(deps.role.front);
  // The one unsigned route with a body is small (docs/protocol.md 4.4): a
  // stranger's bootstrap requests cannot make the service hold 1 MiB each.
  app.use("/v1/bootstrap", boundedBodies(BOOTSTRAP_BODY_BYTES));
  app.use(boundedBodies(maxSize));
  const sessions = deps.sessions ?? new MacSessions();
  app.use(signatures({
    sessions,
    serviceId: deps.serviceId,
    keys: deps.keys,
    replayCache: deps.replayCache,
    unsigned: ["/v1/health", "/v1/bootstrap"],
    ...(deps.keysWaitMs === undefined ? {} : { keysWaitMs: deps.keysWaitMs }),
    ...(deps.notBeforeSeconds === undefined ? {} : { notBeforeSeconds: deps.notBeforeSeconds }),
    ...(metrics
      ? {
        onRefused: (reason: string) =>
          metrics.signatureFailures.inc({ reason: signatureFailureReason(reason) }),
      }
      : {}),
  }));
  if (deps.rule) app.use(audited(deps.rule, metrics));
  app.route("/v1", serviceRoutes(deps.handlers));
  app.route("/v1", sessionRoute(sessions, deps.serviceId));
  if (metrics) app.route("/v1", metricsRoutes(metrics));
  deps.role?.bind((routes) => app.route("/v1", routes));
  app.notFound((c) =>
    deps.role?.waiting
      ? c.json({ error: "Service is not configured yet: retry shortly" }, 503)
      : c.json({ error: `No route ${c.req.method} ${c.req.path}: see docs/protocol.md` }, 404)
  );
  app.onError((error, c) => {
    const status = statusOf(error);
    if (status >= 500) logger.error("Request failed: {error}", { error: String(error) });
    const body: Record<string, unknown> = { error: error.message };
    if (error instanceof SpawnFailedError) {
      body.id = error.serviceId;
      body.exitCode = error.childExitCode;
    }
    if (error instanceof BootstrapRefusedError || error instanceof RateLimitedError) {
      metrics?.bootstrapRefused.inc();
    }
    if (error instanceof RateLimitedError) {
      c.header("retry-after", String(error.retryAfterSeconds));
    }
    return c.json(body, status);
  });
  return app;
}

/**
 * The authorization middleware of `rule`, with its audit trail: refusals
 * (counted and logged) and every allowed change, with its signer, in the
 * `audit` log category (docs/security.md).
 */
function audited(rule: Rule, metrics: ServiceMetrics | undefined): MiddlewareHandler {
  const audit = log("audit");
  // A signer's own refusals (403) have a budget of their own: a flood of
  // forged requests (401) does not hide them, nor they it.
  const budget = new RefusalLogBudget();
  return authorization({
    rule,
    unsigned: ["/v1/health", "/v1/bootstrap"],
    onRefused: (signer, request, why) => {
      metrics?.authorizationRefusals.inc();
      const unlogged = budget.take();
      if (unlogged === null) return;
      audit.warn("Refused {method} {path} of {signer}: {why}", {
        ...request,
        signer: signerName(signer),
        why,
        ...(unlogged > 0 ? { unlogged } : {}),
      });
    },
    onChanged: (signer, request, status) =>
      audit.info("{method} {path} by {signer}: {status}", {
        ...request,
        signer: signerName(signer),
        status,
      }),
  }) as MiddlewareHandler;
}

/** How a 401 for a session the service does not hold begins (docs/protocol.md 2.13). */
const SESSION_GONE = "Unknown or expired session";

/** Refused requests logged at most, 401s and 403s each: a burst of this many, then {@linkcode REFUSALS_PER_SECOND}. */
export const REFUSALS_BURST = 20;
/** Refused requests logged per second once the burst is spent (401s and 403s each). */
export const REFUSALS_PER_SECOND = 1;

/**
 * How many refusal lines may be logged: a token bucket of
 * {@linkcode REFUSALS_BURST}, refilled at {@linkcode REFUSALS_PER_SECOND},
 * that counts the lines it left out, so that a flood of refused requests
 * cannot fill a disk and the next line logged says how many were not.
 */
class RefusalLogBudget {
  #limiter = new RateLimiter({
    burst: REFUSALS_BURST,
    perSecond: REFUSALS_PER_SECOND,
    maxSources: 1,
  });
  #skipped = 0;

  /** The lines left out since the last one logged, or null when this one is left out too. */
  take(): number | null {
    if (this.#limiter.take("audit") > 0) {
      this.#skipped++;
      return null;
    }
    const skipped = this.#skipped;
    this.#skipped = 0;
    return skipped;
  }
}

/**
 * Logs every request refused for its signature (401) in the `audit`
 * category, by the signature check or by the role's relay (not a next hop's
 * 401 relayed back), with what it claims to be (its `keyid`) and where it came from,
 * each field cut to 200 characters; rate-limited so that a flood of forged
 * requests cannot fill a disk: a burst of 20 lines, then one a second, and
 * the next line logged says how many were left out (docs/security.md).
 */
function auditedRefusals(): MiddlewareHandler {
  const audit = log("audit");
  const budget = new RefusalLogBudget();
  const cut = (text: string | undefined): string => (text ?? "").slice(0, 200);
  return async (c, next) => {
    await next();
    // A target's 401 relayed back unchanged is logged by the target.
    if (c.res.status !== 401 || isRelayedAnswer(c)) return;
    const why = await errorOf(c.res);
    // A session the service no longer holds is churn, not a refusal: the client opens another.
    if (why.startsWith(SESSION_GONE)) return;
    const unlogged = budget.take();
    if (unlogged === null) return;
    const input = c.req.header("signature-input") ?? "";
    audit.warn("Refused {method} {path} from {peer} signed as {keyid}: {why}", {
      method: cut(c.req.method),
      path: cut(c.req.path),
      peer: cut(c.req.header("fabric-peer")),
      keyid: cut(/keyid="([^"]*)"/.exec(input)?.[1]),
      why: cut(why),
      status: 401,
      ...(unlogged > 0 ? { unlogged } : {}),
    });
  };
}

function statusOf(error: Error): ContentfulStatusCode {
  if (error instanceof HTTPException) return error.status as ContentfulStatusCode;
  if (error instanceof FabricError) return error.httpStatus as ContentfulStatusCode;
  return 500;
}
