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
  const firstBridge = relayHops(record, new Map(records.map((r) => [r.id, r])))[0];
  if (firstBridge?.endpoint) {
    return { id: record.id, url: firstBridge.endpoint, route: record.route };
  }
  if (!record.endpoint) {
    throw new Error(`Service "${record.id}" has no endpoint yet (state ${record.state})`);
  }
  return { id: record.id, url: record.endpoint };
}

/**
 * The services a request to `record` passes through, in order: none when no
 * bridge stands on its route (it is called directly), else the first bridge
 * and every service after it down to the record's parent (each relays to the
 * next). A hop the registry does not hold (`byId`: every record by ID) is left out.
 */
export function relayHops(
  record: ServiceRecord,
  byId: ReadonlyMap<string, ServiceRecord>,
): ServiceRecord[] {
  const above = record.route.slice(0, -1).map((id) => byId.get(id));
  const first = above.findIndex((r) => r?.role === "bridge");
  if (first < 0) return [];
  return above.slice(first).filter((r): r is ServiceRecord => r !== undefined);
}
