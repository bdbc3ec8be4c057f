/**
 * Middleware that counts every management request by route, method and
 * status and times it (`fabricd_requests_total`,
 * `fabricd_request_duration_seconds`), and the `GET /v1/metrics` route.
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { ServiceMetrics } from "../metrics/service_metrics.ts";

/** Options of {@linkcode requestMetrics}. */
export interface RequestMetricsOptions {
  /** This service's ID: a request for another one is counted as route `relay`. */
  serviceId: string;
}

/**
 * Builds the middleware; mount it first so that refused requests count too.
 * The route label is the matched pattern (`/v1/registry/services/:id`), never
 * the raw path, so a client cannot grow the label set; unmatched paths are
 * `unmatched`.
 * @throws {TypeError} when `serviceId` is empty.
 */
export function requestMetrics(
  metrics: ServiceMetrics,
  options: RequestMetricsOptions,
): MiddlewareHandler {
  if (!options.serviceId) throw new TypeError("Request metrics need the service ID");
  return async (c, next) => {
    const started = performance.now();
    const target = c.req.header("fabric-target")?.trim();
    try {
      await next();
    } finally {
      const route = target && target !== options.serviceId ? "relay" : routeOf(c);
      const method = METHODS.has(c.req.method) ? c.req.method : "OTHER";
      metrics.requests.inc({ route, method, status: String(c.res.status) });
      metrics.requestSeconds.observe({ route, method }, (performance.now() - started) / 1000);
    }
  };
}

/** `GET /v1/metrics`: the service's metrics in the Prometheus text format (signed like every route). */
export function metricsRoutes(metrics: ServiceMetrics): Hono {
  const app = new Hono();
  app.get("/metrics", async (c) => {
    return c.body(await metrics.text(), 200, { "content-type": metrics.contentType });
  });
  return app;
}

const METHODS = new Set(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]);

function routeOf(c: Parameters<MiddlewareHandler>[0]): string {
  const routes = matchedRoutes(c).filter((r) => r.method !== "ALL");
  return routes.at(-1)?.path ?? "unmatched";
}
