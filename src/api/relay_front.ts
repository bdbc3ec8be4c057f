/**
 * The relay that bridges and pilot managers put in front of their service
 * (`relay.ts`), with its counters on the service's metrics.
 * @module
 */
import { ReplayCache } from "../crypto/replay_cache.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import { type ServiceMetrics, signatureFailureReason } from "../metrics/service_metrics.ts";
import type { MiddlewareHandler } from "hono";
import { MAX_BODY_BYTES } from "./app.ts";
import { relay, type RelayMetrics } from "./relay.ts";

/** What a relaying service knows. */
export interface RelayingService {
  serviceId: string;
  keys: FabricKeys;
  /** This service's metrics. Default: none counted. */
  metrics?: ServiceMetrics | undefined;
  children: { endpoint(id: string): Promise<string | undefined> };
  upstream(target: string): string | undefined;
}

/** The relay middleware of a service, and how to take its counters out again. */
export function relayFront(
  service: RelayingService,
): { front: MiddlewareHandler; stop: () => void } {
  const counters = service.metrics ? relayMetrics(service.metrics) : undefined;
  const front = relay({
    table: {
      selfId: service.serviceId,
      child: (id) => service.children.endpoint(id),
      upstream: (target) => service.upstream(target),
    },
    keys: () => service.keys,
    // Its own nonce cache: a relayed request stays usable once at its target.
    replayCache: new ReplayCache(),
    maxBodyBytes: MAX_BODY_BYTES,
    ...(counters ? { metrics: counters.metrics } : {}),
  });
  return { front, stop: () => counters?.remove() };
}

/** The relay's counters over the service's metrics, and how to take them out again. */
function relayMetrics(metrics: ServiceMetrics): { metrics: RelayMetrics; remove: () => void } {
  const requests = metrics.counter("relay_requests_total", "Requests relayed to other services", [
    "kind",
  ]);
  const bytes = metrics.counter("relay_bytes_total", "Body bytes relayed, by direction", [
    "direction",
  ]);
  let open = 0;
  const removeGauge = metrics.gauge({
    name: "relay_websockets_open",
    help: "Relayed WebSockets open now",
    collect: (set) => set({}, open),
  });
  return {
    metrics: {
      relayed: (kind) => requests.inc({ kind }),
      bytes: (direction, count) => bytes.inc({ direction }, count),
      socket: (delta) => (open += delta),
      // Counted where the signature check counts its own (docs/security.md).
      refused: (reason) =>
        metrics.signatureFailures.inc({ reason: signatureFailureReason(reason) }),
    },
    remove: () => {
      removeGauge();
      metrics.remove(requests);
      metrics.remove(bytes);
    },
  };
}
