/**
 * What `fabricd report` shows, gathered from a running fabric: every record
 * with its transitions from the registry (as `fabricd events` reads them), the
 * pilot managers' pilots, and the task counters of every ALIVE agent (the
 * fabric keeps no per-task history, so these are the finished-task data
 * there are).
 * @module
 */
import { eachAtMost } from "../base/at_most.ts";
import type { FabricClient } from "../client/fabric_client.ts";
import type { RegistryClient } from "../client/registry_client.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import type { ServiceRecord, Transition } from "../types/mod.ts";
import { fabricPilots } from "./fabric_pilots.ts";
import type { FinishedTasks, ReportInput, ReportService } from "./report_html.ts";
import { scrapeFabric } from "./scrape.ts";
import { parseTaskMetrics } from "./task_samples.ts";

/** What {@linkcode collectReport} reads from. */
export interface ReportSources {
  keys: FabricKeys;
  client: FabricClient;
  registry: RegistryClient;
}

/** Options of {@linkcode collectReport}. */
export interface CollectReportOptions {
  /** Services shown, the first in registry order. Default 2000. */
  maxServices?: number;
  /** Latest transitions kept per service. Default 1000. */
  maxTransitions?: number;
  /** Histories fetched at once. Default 8. */
  concurrency?: number;
}

/**
 * Reads the report's data from the fabric's registry and services.
 * @throws {FabricRequestError} when the registry does not answer (status 0: not running).
 */
export async function collectReport(
  sources: ReportSources,
  options: CollectReportOptions = {},
): Promise<ReportInput> {
  const records = await sources.registry.list();
  const maxServices = options.maxServices ?? 2000;
  const notes: string[] = [];
  if (records.length > maxServices) {
    notes.push(`The fabric holds ${records.length} services; the first ${maxServices} are shown.`);
  }
  const shown = records.slice(0, maxServices);
  const histories = await transitionsOf(sources.registry, shown, options);
  const pilots = new Map(
    (await fabricPilots(sources.client, records)).map((p) => [p.id, p]),
  );
  const services: ReportService[] = shown.map((record) => {
    const pilot = pilots.get(record.id);
    return {
      record,
      transitions: histories.get(record.id) ?? [],
      pilot: pilot
        ? { manager: pilot.manager, state: pilot.state, reason: pilot.reason }
        : undefined,
    };
  });
  const generatedAt = Date.now();
  const finished: FinishedTasks[] = [];
  const agents = await scrapeFabric(sources.keys, records, { only: (r) => r.role === "agent" });
  for (const result of agents) {
    const { record } = result;
    if (result.text === null) {
      notes.push(`Agent ${record.id} did not answer (${result.error}): its tasks are not counted.`);
      continue;
    }
    const counts = parseTaskMetrics(result.text);
    finished.push({
      agent: record.id,
      incarnation: record.incarnation,
      from: aliveSince(record, histories.get(record.id) ?? []),
      to: generatedAt,
      done: counts.done,
      failed: counts.failed + counts.canceled,
    });
  }
  return { generatedAt, services, finished, notes };
}

/**
 * When the current incarnation of `record` first became ALIVE, on the
 * registry's clock (its own start time when no such transition is kept): its
 * counters count from about then.
 */
export function aliveSince(record: ServiceRecord, transitions: Transition[]): number {
  const first = transitions.find((t) => t.incarnation === record.incarnation && t.to === "ALIVE");
  return first?.at ?? record.started;
}

async function transitionsOf(
  registry: RegistryClient,
  records: ServiceRecord[],
  options: CollectReportOptions,
): Promise<Map<string, Transition[]>> {
  const out = new Map<string, Transition[]>();
  const keep = options.maxTransitions ?? 1000;
  await eachAtMost(records, options.concurrency ?? 8, async (record) => {
    const found = await registry.get(record.id);
    const sorted = (found?.transitions ?? []).sort((a, b) => a.seq - b.seq);
    out.set(record.id, sorted.slice(-keep));
  });
  return out;
}
