/**
 * The management API of every service: Hono on `Deno.serve`, signed requests
 * and answers, validated bodies, one error handler.
 * @module
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { FabricKeys } from "../crypto/keys.ts";
import { ReplayCache } from "../crypto/replay_cache.ts";
import { log } from "../runtime/logging.ts";
import { FabricRequestError } from "../client/fabric_client.ts";
import { serviceRoutes } from "./service_routes.ts";
import {
  BootstrapRefusedError,
  ConflictError,
  RateLimitedError,
  type ServiceHandlers,
  SpawnFailedError,
} from "./service_handlers.ts";
import { signatures } from "./signature_middleware.ts";
import { relay, type RelayMetrics, type RelayTable } from "../services/bridge/relay.ts";
import { type ServiceMetrics, signatureFailureReason } from "../metrics/service_metrics.ts";
import { metricsRoutes, requestMetrics } from "./request_metrics.ts";

/** Largest request body accepted, in bytes (HTTP 413 above it). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** What {@linkcode createApp} needs. */
export interface AppDeps {
  serviceId: string;
  keys: () => FabricKeys | null;
  replayCache: ReplayCache;
  handlers: ServiceHandlers;
  /** Role-specific routers, mounted under `/v1` (e.g. the registry's). */
  roleRoutes?: Hono[];
  /** Largest request body in bytes. Default {@linkcode MAX_BODY_BYTES}. */
  maxBodyBytes?: number;
  /** How long a signed request waits for keys during bootstrap, ms. Default 2000. */
  keysWaitMs?: number;
  /** Bridges: where to relay requests meant for other services. */
  relay?: RelayTable;
  /**
   * Signed requests created before this time (seconds since the epoch) are
   * refused: the process's start less the clock skew. Default: no bound.
   */
  notBeforeSeconds?: number;
  /** This service's metrics: counted here and served at `GET /v1/metrics`. Default: none. */
  metrics?: ServiceMetrics;
}

/**
 * Builds the management API app of one service.
 * @throws {TypeError} when `serviceId` is empty.
 */
export function createApp(deps: AppDeps): Hono {
  const logger = log("api");
  const app = new Hono();
  const maxSize = deps.maxBodyBytes ?? MAX_BODY_BYTES;
  const metrics = deps.metrics;
  if (metrics) app.use(requestMetrics(metrics, { serviceId: deps.serviceId }));
  // The relay verifies, limits and streams bodies itself, before anything buffers them.
  if (deps.relay) {
    app.use(relay({
      table: deps.relay,
      keys: deps.keys,
      replayCache: new ReplayCache(),
      maxBodyBytes: maxSize,
      ...(metrics ? { metrics: relayMetrics(metrics) } : {}),
    }));
  }
  app.use(bodyLimit({
    maxSize,
    onError: () => {
      throw new HTTPException(413, {
        message: `Request body is larger than ${maxSize} bytes: send less`,
      });
    },
  }));
  app.use(signatures({
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
  app.route("/v1", serviceRoutes(deps.handlers));
  if (metrics) app.route("/v1", metricsRoutes(metrics));
  for (const routes of deps.roleRoutes ?? []) app.route("/v1", routes);
  app.notFound((c) =>
    c.json({ error: `No route ${c.req.method} ${c.req.path}: see docs/protocol.md` }, 404)
  );
  app.onError((error, c) => {
    const status = statusOf(error);
    if (status >= 500) logger.error("Request failed: {error}", { error: String(error) });
    const body: Record<string, unknown> = { error: error.message };
    if (error instanceof SpawnFailedError) {
      body.id = error.serviceId;
      body.exitCode = error.exitCode;
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

/** The bridge's relay counters over the service's metrics. */
function relayMetrics(metrics: ServiceMetrics): RelayMetrics {
  const requests = metrics.counter("relay_requests_total", "Requests relayed to other services", [
    "kind",
  ]);
  const bytes = metrics.counter("relay_bytes_total", "Body bytes relayed, by direction", [
    "direction",
  ]);
  let open = 0;
  metrics.gauge({
    name: "relay_websockets_open",
    help: "Relayed WebSockets open now",
    collect: (set) => set({}, open),
  });
  return {
    relayed: (kind) => requests.inc({ kind }),
    bytes: (direction, count) => bytes.inc({ direction }, count),
    socket: (delta) => (open += delta),
  };
}

function statusOf(error: Error): ContentfulStatusCode {
  if (error instanceof HTTPException) return error.status as ContentfulStatusCode;
  if (error instanceof BootstrapRefusedError) return 403;
  if (error instanceof RateLimitedError) return 429;
  if (error instanceof ConflictError) return 409;
  if (error instanceof SpawnFailedError) return 502;
  if (error.name === "LauncherUrlError") return 400;
  if (error.name === "StaleIncarnationError") return 409;
  if (error.name === "InvalidTransitionError") return 409;
  if (error.name === "NotLiveError") return 409;
  if (error instanceof FabricRequestError) return error.status === 0 ? 503 : 502;
  if (error.name === "UnknownServiceError") return 404;
  return 500;
}
