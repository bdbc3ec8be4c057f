/**
 * `fabricd forget ID...`: removes the records of ended services (STOPPED,
 * FAILED, LOST) from the registry, with their history; `status --prune` does
 * the same for every ended record.
 * @module
 */
import { FabricRequestError } from "../client/fabric_client.ts";
import { EXIT, type ServiceRecord, type ServiceState } from "../types/mod.ts";
import { checkId, parseFlags, stringFlag } from "./args.ts";
import { usage } from "./cli_error.ts";
import { loadContext } from "./context.ts";

/** Help text of `fabricd forget`. */
export const FORGET_HELP = `fabricd forget ID... [--fabric FILE]

Removes the named services' records, and their transitions, from the registry:
"fabricd status --all" and "fabricd events" no longer show them, and watchers
(fabricd ui) get a "removed" event. Only ended records can be forgotten:
STOPPED, FAILED or LOST. A running service is refused (stop it first with
"fabricd stop ID"); so is an unknown ID. "fabricd status --prune" forgets every
ended record at once.

Exit codes: 0 when every named record was forgotten; 1 when any was refused
or unknown (the others are still forgotten; each refusal says why); 64 without
an ID or with a malformed one (nothing is forgotten); 69 when the registry
does not answer.
`;

/** States of records the registry lets `forget` remove (its state machine's ended states). */
export const FORGETTABLE_STATES: readonly ServiceState[] = ["STOPPED", "FAILED", "LOST"];

/** Records the registry removes; a {@linkcode RegistryClient} is one. */
export interface Forgetter {
  forget(id: string): Promise<ServiceRecord>;
}

/** What {@linkcode forgetRecords} did. */
export interface ForgetOutcome {
  /** The records removed, as they were. */
  forgotten: ServiceRecord[];
  /** The IDs refused, with the registry's reason. */
  refused: { id: string; reason: string }[];
}

/**
 * Forgets `ids` one by one: a refusal (409 not ended, 404 unknown) is
 * collected and the rest go on.
 * @throws {FabricRequestError} when the registry cannot be reached or fails otherwise.
 */
export async function forgetRecords(registry: Forgetter, ids: string[]): Promise<ForgetOutcome> {
  const outcome: ForgetOutcome = { forgotten: [], refused: [] };
  for (const id of ids) {
    try {
      outcome.forgotten.push(await registry.forget(id));
    } catch (error) {
      if (!(error instanceof FabricRequestError) || ![404, 409].includes(error.status)) {
        throw error;
      }
      outcome.refused.push({ id, reason: error.message });
    }
  }
  return outcome;
}

/** Prints what {@linkcode forgetRecords} did; the exit code. */
export function reportForgotten(
  outcome: ForgetOutcome,
  say: (line: string) => void = console.log,
): number {
  for (const record of outcome.forgotten) {
    say(`forgot ${record.id} (${record.role}, ${record.state})`);
  }
  for (const { reason } of outcome.refused) console.error(`fabricd: ${reason}`);
  return outcome.refused.length > 0 ? EXIT.FAILURE : EXIT.OK;
}

/** Runs `fabricd forget`. */
export async function forgetCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("forget", args, { fabric: { type: "string" } });
  if (parsed.flags.help) {
    console.log(FORGET_HELP);
    return EXIT.OK;
  }
  if (parsed.positionals.length === 0) {
    throw usage('Give the IDs of ended services: e.g. "fabricd forget spw-1a2b3c4d"');
  }
  const ids = [...new Set(parsed.positionals.map((id) => checkId("service", id)))];
  const context = await loadContext(stringFlag(parsed, "fabric"));
  return reportForgotten(await forgetRecords(context.registry, ids));
}
