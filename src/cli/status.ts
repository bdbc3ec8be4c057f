/**
 * `fabricd status`: the fabric as a tree (ID, role, host, pid, state,
 * heartbeat age), or `--json`.
 * @module
 */
import type { ServiceRecord, ServiceStatus } from "../types/mod.ts";
import { EXIT } from "../types/mod.ts";
import { parseFlags, stringFlag } from "./args.ts";
import { usage } from "./cli_error.ts";
import { loadContext, targetOf } from "./context.ts";

/** Help text of `fabricd status`. */
export const STATUS_HELP = `fabricd status [ID] [--fabric FILE] [--json] [--all]

Without ID: every service of the fabric as the spawn tree (ID, role, host, pid,
state, incarnation, age of the last heartbeat), from the registry. Stopped
services are hidden unless --all is given. --json prints the registry's records.

With ID: asks that service itself (a signed GET /v1/status, through the bridges
on its route) and prints its answer and the round-trip time.
`;

/** Runs `fabricd status`. */
export async function statusCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("status", args, {
    fabric: { type: "string" },
    json: { type: "boolean" },
    all: { type: "boolean" },
  });
  if (parsed.flags.help) {
    console.log(STATUS_HELP);
    return EXIT.OK;
  }
  const context = await loadContext(stringFlag(parsed, "fabric"));
  const [id, ...extra] = parsed.positionals;
  if (extra.length > 0) throw usage(`Unexpected "${extra[0]}": see "fabricd status --help"`);
  if (id) {
    const target = await targetOf(context, id);
    const started = performance.now();
    const answer = await context.client.call<ServiceStatus>(target, {
      method: "GET",
      path: "/v1/status",
    });
    const ms = performance.now() - started;
    if (parsed.flags.json) {
      console.log(JSON.stringify({ ...answer, roundTripMs: Math.round(ms * 10) / 10 }));
    } else {
      const via = target.route ? ` via ${target.route.slice(0, -1).join(" > ")}` : "";
      console.log(
        `${answer.id} (${answer.role}) on ${answer.host}, pid ${answer.pid}: ${answer.state}, incarnation ${answer.incarnation}`,
      );
      console.log(`  signed answer verified in ${ms.toFixed(1)} ms${via}`);
      console.log(
        `  sessions: ${answer.sessions.join(", ") || "none"}; children: ${
          answer.children.join(", ") || "none"
        }`,
      );
    }
    return EXIT.OK;
  }
  const records = await context.registry.list();
  if (parsed.flags.json) {
    const services = records.map((r) => ({
      ...r,
      unreachableVia: brokenAncestor(r, records) ?? "",
    }));
    console.log(JSON.stringify({ services }, null, 2));
    return EXIT.OK;
  }
  const shown = parsed.flags.all
    ? records
    : records.filter((r) => !["STOPPED", "LOST"].includes(r.state));
  console.log(renderTree(shown, Date.now()));
  return EXIT.OK;
}

/**
 * Draws records as a tree by parent. Records whose parent is not shown are roots.
 */
export function renderTree(records: ServiceRecord[], now: number): string {
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
  const rows: string[][] = [["SERVICE", "ROLE", "HOST", "PID", "STATE", "INC", "HEARTBEAT", ""]];
  const walk = (record: ServiceRecord, prefix: string, last: boolean, depth: number): void => {
    const branch = depth === 0 ? "" : `${prefix}${last ? "└─ " : "├─ "}`;
    rows.push([
      branch + record.id,
      record.role,
      record.host || "-",
      record.pid ? String(record.pid) : "-",
      record.state,
      String(record.incarnation),
      heartbeatAge(record, now),
      unreachableNote(record, records),
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
 * The first service on `record`'s route (above it) that is not running: through
 * it the service cannot be reached, whatever its own record says.
 */
export function brokenAncestor(
  record: ServiceRecord,
  records: ServiceRecord[],
): string | undefined {
  const byId = new Map(records.map((r) => [r.id, r]));
  for (const id of record.route.slice(0, -1)) {
    const hop = byId.get(id);
    if (hop && !["ALIVE", "SUSPECT"].includes(hop.state)) return `${hop.id} ${hop.state}`;
  }
  return undefined;
}

function unreachableNote(record: ServiceRecord, records: ServiceRecord[]): string {
  if (["STOPPED", "LOST", "FAILED"].includes(record.state)) return "";
  const broken = brokenAncestor(record, records);
  return broken ? `unreachable: ${broken}` : "";
}

function heartbeatAge(record: ServiceRecord, now: number): string {
  if (!record.lastHeartbeat) return "-";
  const seconds = Math.max(0, (now - record.lastHeartbeat) / 1000);
  return seconds < 60 ? `${seconds.toFixed(1)}s ago` : `${Math.round(seconds / 60)}m ago`;
}
