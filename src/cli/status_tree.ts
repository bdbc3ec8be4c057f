/**
 * How `fabricd status` shows records: the spawn tree as a table, the
 * unreachable note, and `--json` written in chunks. No I/O but standard
 * output, no keys, no client: shared by the signed path (`status.ts`) and the
 * local read socket's (`status_local.ts`).
 * @module
 */
import type { ServiceRecord } from "../types/mod.ts";
import { relayHops } from "../client/route.ts";

/** The records as `status --json` shows them: each with its `unreachableVia`. */
export function withReachability(records: ServiceRecord[]): object[] {
  return records.map((r) => ({ ...r, unreachableVia: brokenAncestor(r, records) ?? "" }));
}

/** The records the table shows: all with `--all`, else not STOPPED or LOST ones. */
export function shownRecords(records: ServiceRecord[], all: boolean): ServiceRecord[] {
  return all ? records : records.filter((r) => !["STOPPED", "LOST"].includes(r.state));
}

/**
 * Draws records as a tree by parent. Records whose parent is not shown are
 * roots. `known` (default: `records`) is every record at hand, shown or not,
 * so that a service is marked unreachable through a relay that is hidden
 * (a `STOPPED` bridge).
 */
export function renderTree(
  records: ServiceRecord[],
  now: number,
  known: ServiceRecord[] = records,
): string {
  const ids = new Set(records.map((r) => r.id));
  const children = new Map<string, ServiceRecord[]>();
  const roots: ServiceRecord[] = [];
  for (const record of records) {
    if (record.parent && ids.has(record.parent)) {
      const list = children.get(record.parent) ?? [];
      list.push(record);
      children.set(record.parent, list);
    } else {
      roots.push(record);
    }
  }
  const rows: string[][] = [[
    "SERVICE",
    "ROLE",
    "HOST",
    "PID",
    "STATE",
    "INC",
    "UPTIME",
    "RESTARTS",
    "HEARTBEAT",
    "LAST FAILURE",
    "",
  ]];
  const walk = (record: ServiceRecord, prefix: string, last: boolean, depth: number): void => {
    const branch = depth === 0 ? "" : `${prefix}${last ? "└─ " : "├─ "}`;
    rows.push([
      branch + record.id,
      record.role,
      record.host || "-",
      record.pid ? String(record.pid) : "-",
      record.state,
      String(record.incarnation),
      uptime(record, now),
      String(record.restarts),
      heartbeatAge(record, now),
      shortFailure(record.lastFailure),
      unreachableNote(record, known),
    ]);
    const kids = children.get(record.id) ?? [];
    const nextPrefix = depth === 0 ? "" : prefix + (last ? "   " : "│  ");
    kids.forEach((kid, i) => walk(kid, nextPrefix, i === kids.length - 1, depth + 1));
  };
  roots.forEach((root, i) => walk(root, "", i === roots.length - 1, 0));
  if (rows.length === 1) return "No services in the registry.";
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => [...row[col]!].length)));
  return rows.map((row) => row.map((cell, col) => cell.padEnd(widths[col]!)).join("  ").trimEnd())
    .join("\n");
}

/**
 * The first service a request to `record` passes through (`relayHops`: from the
 * first bridge on its route down) that is not running: through it the service
 * cannot be reached, whatever its own record says. An ancestor above the
 * first bridge, or any when there is no bridge, is not on the way.
 */
export function brokenAncestor(
  record: ServiceRecord,
  records: ServiceRecord[],
): string | undefined {
  const hop = relayHops(record, indexOf(records)).find((r) =>
    !["ALIVE", "SUSPECT"].includes(r.state)
  );
  return hop ? `${hop.id} ${hop.state}` : undefined;
}

function unreachableNote(record: ServiceRecord, records: ServiceRecord[]): string {
  if (["STOPPED", "LOST", "FAILED"].includes(record.state)) return "";
  const broken = brokenAncestor(record, records);
  return broken ? `unreachable: ${broken}` : "";
}

/** How long a running service's current incarnation has run: `42s`, `5m`, `3h`, `2d`. */
function uptime(record: ServiceRecord, now: number): string {
  if (!["ALIVE", "SUSPECT"].includes(record.state) || !record.started) return "-";
  const seconds = Math.max(0, Math.floor((now - record.started) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** Longest last failure shown in the table; `--json` has it whole. */
const FAILURE_WIDTH = 40;

/** The last failure on one line, cut to {@linkcode FAILURE_WIDTH} characters. */
export function shortFailure(reason: string): string {
  const line = reason.replace(/\s+/g, " ").trim();
  if (!line) return "-";
  const chars = [...line];
  return chars.length <= FAILURE_WIDTH ? line : `${chars.slice(0, FAILURE_WIDTH - 1).join("")}…`;
}

function heartbeatAge(record: ServiceRecord, now: number): string {
  if (!record.lastHeartbeat) return "-";
  const seconds = Math.max(0, (now - record.lastHeartbeat) / 1000);
  return seconds < 60 ? `${seconds.toFixed(1)}s ago` : `${Math.round(seconds / 60)}m ago`;
}

/** Records by ID, built once per list: 10,000 services must not cost 10,000 maps. */
const INDEXES = new WeakMap<readonly ServiceRecord[], Map<string, ServiceRecord>>();

function indexOf(records: readonly ServiceRecord[]): Map<string, ServiceRecord> {
  let byId = INDEXES.get(records);
  if (!byId) {
    byId = new Map(records.map((r) => [r.id, r]));
    INDEXES.set(records, byId);
  }
  return byId;
}

/**
 * Prints `{"services": [...]}` as `JSON.stringify(_, null, 2)` would, a few
 * hundred records at a time, so 10,000 records never make one huge string.
 */
export async function writeServicesJson(services: readonly object[]): Promise<void> {
  const encoder = new TextEncoder();
  const write = async (text: string): Promise<void> => {
    const bytes = encoder.encode(text);
    for (let done = 0; done < bytes.length;) done += await Deno.stdout.write(bytes.subarray(done));
  };
  if (services.length === 0) return await write('{\n  "services": []\n}\n');
  await write('{\n  "services": [\n');
  for (let i = 0; i < services.length; i += 500) {
    const chunk = services.slice(i, i + 500).map((s) =>
      "    " + JSON.stringify(s, null, 2).replaceAll("\n", "\n    ")
    );
    const last = i + 500 >= services.length;
    await write(chunk.join(",\n") + (last ? "\n  ]\n}\n" : ",\n"));
  }
}
