/**
 * How to reach a service from the root of the fabric: directly when no bridge
 * stands between, else through the first bridge on its route, which relays the
 * request down the spawn tree (DESIGN.md "Reachability").
 * @module
 */
import type { ServiceRecord } from "../types/mod.ts";
import type { Target } from "./fabric_client.ts";

/**
 * The target for `record`, given every record of the registry.
 * @throws {Error} when the service has no endpoint yet.
 */
export function targetFor(record: ServiceRecord, records: ServiceRecord[]): Target {
  const byId = new Map(records.map((r) => [r.id, r]));
  const firstBridge = record.route
    .slice(0, -1)
    .map((id) => byId.get(id))
    .find((r) => r?.role === "bridge" && r.endpoint);
  if (firstBridge) return { id: record.id, url: firstBridge.endpoint, route: record.route };
  if (!record.endpoint) {
    throw new Error(`Service "${record.id}" has no endpoint yet (state ${record.state})`);
  }
  return { id: record.id, url: record.endpoint };
}
