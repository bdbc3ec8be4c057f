/**
 * The pilots of every ALIVE pilot manager, as the page of `fabricd ui` and
 * `fabricd report` show them: one signed `GET /v1/pilots` per manager, a
 * bounded number of managers and pilots, a manager that does not answer
 * simply contributing none.
 * @module
 */
import type { FabricClient } from "../client/fabric_client.ts";
import { targetFor } from "../client/route.ts";
import type { ServiceRecord } from "../types/mod.ts";

/** A pilot with the ID of its manager; the other fields as the manager gives them. */
export interface FabricPilot {
  manager: string;
  id: string;
  state: string;
  submitted: number;
  reason: string;
  [field: string]: unknown;
}

/** Options of {@linkcode fabricPilots}. */
export interface FabricPilotsOptions {
  /** Pilot managers asked, in record order. Default 16. */
  maxManagers?: number;
  /** Pilots taken from one manager. Default 1000. */
  maxPilots?: number;
  /** Time for one manager's answer, ms. Default 5000. */
  timeoutMs?: number;
}

/** The pilots of the ALIVE pilot managers of `records`. */
export async function fabricPilots(
  client: FabricClient,
  records: ServiceRecord[],
  options: FabricPilotsOptions = {},
): Promise<FabricPilot[]> {
  const managers = records.filter((r) => r.role === "pilot-manager" && r.state === "ALIVE");
  const pilots: FabricPilot[] = [];
  for (const manager of managers.slice(0, options.maxManagers ?? 16)) {
    const answer = await client.call<{ pilots: Record<string, unknown>[] }>(
      targetFor(manager, records),
      { method: "GET", path: "/v1/pilots" },
      { timeoutMs: options.timeoutMs ?? 5000 },
    ).catch(() => ({ pilots: [] }));
    for (const p of answer.pilots.slice(0, options.maxPilots ?? 1000)) {
      pilots.push({
        ...p,
        manager: manager.id,
        id: String(p.id ?? ""),
        state: String(p.state ?? ""),
        submitted: Number(p.submitted ?? 0),
        reason: String(p.reason ?? ""),
      });
    }
  }
  return pilots;
}
