/**
 * `fabricd status`: the fabric as a tree (ID, role, host, pid, state,
 * uptime, restarts, heartbeat age, last failure), or `--json`; `--prune`
 * forgets the ended records first.
 * @module
 */
import type { ServiceRecord, ServiceStatus } from "../types/mod.ts";
import { EXIT, ROLES, SERVICE_STATES } from "../types/mod.ts";
import type { ListFilter } from "../client/registry_client.ts";
import { listFlag, type ParsedArgs, parseFlags, stringFlag } from "./args.ts";
import { usage } from "./cli_error.ts";
import { loadContext, targetOf } from "./context.ts";
import { forgetRecords, FORGETTABLE_STATES, reportForgotten } from "./forget.ts";

/** Help text of `fabricd status`. */
export const STATUS_HELP = `fabricd status [ID] [--fabric FILE] [--json] [--all] [--prune]

Without ID: every service of the fabric as the spawn tree (ID, role, host, pid,
state, incarnation, uptime of a running service, restarts, age of the last
heartbeat, last failure shortened), from the registry. Stopped and lost
services are hidden unless --all is given. --json prints the registry's records.
--prune first forgets every ended record (STOPPED, FAILED, LOST; see "fabricd
forget --help"), printing each, then shows what is left; exit 1 if any was
refused.

Filters, applied by the registry (repeat a flag or give a comma-separated list):
--role ROLE keeps services of these roles, --state STATE those in these states,
--under ID that service and everything below it.

With ID: asks that service itself (a signed GET /v1/status, through the bridges
on its route) and prints its answer and the round-trip time.
`;

/** Runs `fabricd status`. */
export async function statusCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("status", args, {
    fabric: { type: "string" },
    json: { type: "boolean" },
    all: { type: "boolean" },
    role: { type: "string", multiple: true },
    state: { type: "string", multiple: true },
    under: { type: "string" },
    prune: { type: "boolean" },
  });
  if (parsed.flags.help) {
    console.log(STATUS_HELP);
    return EXIT.OK;
  }
  const context = await loadContext(stringFlag(parsed, "fabric"));
  const [id, ...extra] = parsed.positionals;
  if (extra.length > 0) throw usage(`Unexpected "${extra[0]}": see "fabricd status --help"`);
  if (id && parsed.flags.prune) throw usage("--prune works on the whole fabric: give no ID");
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
  let code: number = EXIT.OK;
  if (parsed.flags.prune) {
    const ended = (await context.registry.list()).filter((r) =>
      FORGETTABLE_STATES.includes(r.state)
    );
    code = reportForgotten(await forgetRecords(context.registry, ended.map((r) => r.id)));
    if (ended.length === 0) console.log("No ended records to forget.");
  }
  const records = await context.registry.list(undefined, listFilterOf(parsed));
  if (parsed.flags.json) {
    const services = records.map((r) => ({
      ...r,
      unreachableVia: brokenAncestor(r, records) ?? "",
    }));
    await writeServicesJson(services);
    return code;
  }
  const shown = parsed.flags.all
    ? records
    : records.filter((r) => !["STOPPED", "LOST"].includes(r.state));
  console.log(renderTree(shown, Date.now()));
  return code;
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
  const byId = indexOf(records);
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

/** `--role`, `--state` and `--under` as the registry's list filter. */
function listFilterOf(parsed: ParsedArgs): ListFilter {
  const split = (name: string): string[] =>
    listFlag(parsed, name).flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
  const roles = split("role");
  const bad = roles.find((r) => !(ROLES as readonly string[]).includes(r));
  if (bad !== undefined) throw usage(`Unknown role "${bad}": use one of ${ROLES.join(", ")}`);
  const states = split("state").map((s) => s.toUpperCase());
  const badState = states.find((s) => !(SERVICE_STATES as readonly string[]).includes(s));
  if (badState !== undefined) {
    throw usage(`Unknown state "${badState}": use one of ${SERVICE_STATES.join(", ")}`);
  }
  const under = stringFlag(parsed, "under");
  return {
    ...(roles.length ? { roles } : {}),
    ...(states.length ? { states } : {}),
    ...(under ? { under } : {}),
  };
}

/**
 * Prints `{"services": [...]}` as `JSON.stringify(_, null, 2)` would, a few
 * hundred records at a time, so 10,000 records never make one huge string.
 */
async function writeServicesJson(services: readonly object[]): Promise<void> {
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
