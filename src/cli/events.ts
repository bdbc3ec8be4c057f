/**
 * `fabricd events [-f] [--since D] [--service ID] [--json]`: every state
 * transition of the fabric with its time, service, from, to, incarnation and
 * reason, oldest first, from the registry's transition history; `-f` then
 * follows the registry's change stream, like `kubectl get events -w`.
 * @module
 */
import { eachAtMost } from "../base/at_most.ts";
import type { RegistryEvent, ServiceRecord, Transition } from "../types/mod.ts";
import { EXIT } from "../types/mod.ts";
import { idFlag, parseDuration, parseFlags, stringFlag } from "./args.ts";
import { CliError, unknownService, usage } from "./cli_error.ts";
import { FabricRequestError } from "../client/fabric_client.ts";
import { type FabricContext, loadContext } from "./context.ts";
import { MAX_AUDIT_LINES } from "../registry/rotation_routes.ts";
import { sleep } from "../config/retry.ts";

/** Help text of `fabricd events`. */
export const EVENTS_HELP = `fabricd events [-f] [--since D] [--service ID] [--json] [--fabric FILE]
fabricd events --audit [--since D] [--json] [--fabric FILE]

Prints every state transition of the fabric, oldest first: time, service,
role, from, to, incarnation and reason.

  -f, --follow     keep printing new transitions as they happen (Ctrl-C ends); a
                   stream that breaks is followed again for up to 60 s (then 69)
  --since D        only transitions of the last D (e.g. 90s, 10m, 2h, 1d)
  --service ID     only the transitions of service ID (exit 1 when the
                   registry has no such service)
  --audit          the registry's audit lines instead, oldest first (at most
                   the last ${MAX_AUDIT_LINES}): every refused request (401, 403) and every
                   change allowed, with its signer (docs/security.md)
  --json           one JSON object per line: {seq, at, id, role, from, to, incarnation, reason}
                   (with --audit: {at, level, message, properties})
`;

/** Most services whose histories are fetched at once. */
const HISTORY_CONCURRENCY = 8;

/** Pause before `--follow` resumes a stream the registry ended. */
const RESUME_MS = 500;

// The one duration parser of every command (args.ts), kept importable from here.
export { parseDuration };

/** One transition as a line of `fabricd events`. */
export function formatTransition(t: Transition, role: string): string {
  const time = new Date(t.at).toISOString().replace("T", " ").replace("Z", "");
  const from = t.from || "-";
  return `${time}  ${t.id.padEnd(13)} ${role.padEnd(13)} ${from.padEnd(13)} -> ${
    t.to.padEnd(13)
  } inc ${t.incarnation}  ${t.reason}`;
}

/** Runs `fabricd events`. */
export async function eventsCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("events", args, {
    follow: { type: "boolean", short: "f" },
    since: { type: "string" },
    service: { type: "string" },
    audit: { type: "boolean" },
    json: { type: "boolean" },
    fabric: { type: "string" },
  });
  if (parsed.flags.help) {
    console.log(EVENTS_HELP);
    return EXIT.OK;
  }
  if (parsed.positionals.length > 0) {
    throw usage('fabricd events takes no arguments: see "fabricd events --help"');
  }
  const sinceText = stringFlag(parsed, "since");
  const notBefore = sinceText === undefined ? 0 : Date.now() - parseDuration(sinceText);
  const only = idFlag(parsed, "service", "service");
  const json = parsed.flags.json === true;
  if (parsed.flags.audit && (parsed.flags.follow || only)) {
    throw usage('--audit takes no -f or --service: see "fabricd events --help"');
  }
  const context = await loadContext(stringFlag(parsed, "fabric"));
  const named = only ? await context.registry.get(only) : undefined;
  if (only && !named) throw unknownService(only);
  if (parsed.flags.audit) {
    await printAudit(context, sinceText === undefined ? undefined : notBefore, json);
    return EXIT.OK;
  }
  const print = (t: Transition, role: string): void => {
    if (t.at < notBefore || (only && t.id !== only)) return;
    console.log(
      json
        ? JSON.stringify({
          seq: t.seq,
          at: t.at,
          id: t.id,
          role,
          from: t.from,
          to: t.to,
          incarnation: t.incarnation,
          reason: t.reason,
        })
        : formatTransition(t, role),
    );
  };
  if (parsed.flags.follow) {
    await followEvents(context, print);
    return EXIT.OK;
  }
  const all = named
    ? named.transitions.map((transition) => ({ transition, role: named.record.role }))
    : await histories(context.registry, await context.registry.list());
  all.sort((a, b) => a.transition.seq - b.transition.seq);
  for (const { transition, role } of all) print(transition, role);
  return EXIT.OK;
}

/** How long a follow must have run to count as working when it breaks, ms. */
const WORKED_MS = 5000;

/** How long `--follow` retries a change stream it lost before it gives up (69). */
export const FOLLOW_RETRY_MS = 60_000;

/**
 * Prints every stored transition, then new ones as they come, until SIGINT
 * or SIGTERM (or `signal`). A stream that breaks (the registry restarted, a
 * connection cut) is followed again from the last transition printed, for
 * {@linkcode FOLLOW_RETRY_MS} at most.
 * @throws {CliError} 69 when the registry stays unreachable that long.
 */
export async function followEvents(
  context: Pick<FabricContext, "registry">,
  print: (t: Transition, role: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  // The change stream replays every stored transition, then follows.
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  signal?.addEventListener("abort", onSignal, { once: true });
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    // A stream the registry ends (a watcher that fell behind is cut off,
    // docs/protocol.md 5.3) resumes after the last transition printed.
    let since = 0;
    let lostAt: number | null = null;
    while (!stop.signal.aborted) {
      const began = Date.now();
      try {
        await context.registry.watch(since, (event: RegistryEvent) => {
          if (event.kind === "transition" && event.transition) {
            since = event.seq;
            print(event.transition, event.record.role);
          }
        }, stop.signal);
      } catch (error) {
        if (stop.signal.aborted || !retriable(error)) throw error;
        // A stream that ran a while before it broke worked: a new loss.
        if (Date.now() - began >= WORKED_MS) lostAt = null;
        const why = error instanceof Error ? error.message : String(error);
        if (lostAt !== null && Date.now() - lostAt > FOLLOW_RETRY_MS) {
          throw new CliError(
            `Lost the registry's change stream for ${FOLLOW_RETRY_MS / 1000} s (${why}): ` +
              'check the fabric with "fabricd status", or start it with "fabricd up"',
            EXIT.UNREACHABLE,
          );
        }
        if (lostAt === null) {
          console.error(`events: the change stream broke (${why}); following again...`);
        }
        lostAt ??= Date.now();
      }
      if (!stop.signal.aborted) await sleep(RESUME_MS, stop.signal);
    }
  } finally {
    signal?.removeEventListener("abort", onSignal);
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

/** Whether a broken follow may be retried: no answer, a cut stream or a 5xx, not a refusal. */
function retriable(error: unknown): boolean {
  if (error instanceof FabricRequestError) return error.status === 0 || error.status >= 500;
  return error instanceof TypeError;
}

async function histories(
  registry: Awaited<ReturnType<typeof loadContext>>["registry"],
  records: ServiceRecord[],
): Promise<{ transition: Transition; role: string }[]> {
  const out: { transition: Transition; role: string }[] = [];
  await eachAtMost(records, HISTORY_CONCURRENCY, async (record) => {
    const found = await registry.get(record.id);
    for (const transition of found?.transitions ?? []) {
      out.push({ transition, role: record.role });
    }
  });
  return out;
}

/** One line of the registry's audit trail (`GET /v1/registry/audit`). */
interface AuditLine {
  at: number;
  level: string;
  message: string;
  properties?: Record<string, unknown>;
}

/** Prints the registry's audit lines since `since` (ms since the epoch). */
async function printAudit(
  context: FabricContext,
  since: number | undefined,
  json: boolean,
): Promise<void> {
  const registry = context.registry.endpoints[0]!;
  const query = `limit=${MAX_AUDIT_LINES}${since === undefined ? "" : `&since=${since}`}`;
  const answer = await context.client.call<{ lines: AuditLine[]; truncated: boolean }>(registry, {
    method: "GET",
    path: `/v1/registry/audit?${query}`,
  });
  for (const line of answer.lines) {
    if (json) console.log(JSON.stringify(line));
    else {
      const time = new Date(line.at).toISOString().replace("T", " ").replace("Z", "");
      console.log(`${time}  ${line.level.padEnd(5)} ${line.message}`);
    }
  }
}
