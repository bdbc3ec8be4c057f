/**
 * The one ALIVE service of a role that a command talks to, by ID or, when the
 * fabric has just one, without.
 * @module
 */
import type { Target } from "../client/fabric_client.ts";
import { targetFor } from "../client/route.ts";
import { EXIT, type Role, type ServiceRecord, type ServiceState } from "../types/mod.ts";
import { CliError, recordNamed, usage } from "./cli_error.ts";
import { ENDED_STATES } from "../registry/state_machine.ts";
import type { FabricContext } from "./context.ts";

/** The flag that names a service of each role, where it is not `--ROLE`. */
const FLAG_OF_ROLE: Partial<Record<Role, string>> = { "pilot-manager": "--manager" };

/**
 * A named service that exists with the right role but is not ALIVE (exit 1):
 * `state` tells whether waiting may help (not in `FINAL_STATES`, registry/state_machine.ts).
 */
export class NotAliveError extends CliError {
  /** The service's state in the registry. */
  readonly state: ServiceState;
  /** Builds the error. */
  constructor(message: string, state: ServiceState) {
    super(message, EXIT.FAILURE);
    this.name = "NotAliveError";
    this.state = state;
  }
}

/**
 * Record `id` of `records`, which must be a `role` service.
 * @throws {CliError} exit 1 when the registry has no service `id` or it has another role.
 */
export function recordOf(records: ServiceRecord[], role: Role, id: string): ServiceRecord {
  const record = recordNamed(records, id);
  if (record.role !== role) {
    throw new CliError(
      `Service "${id}" is a ${record.role}, not a ${role}: see "fabricd status --role ${role}"`,
      EXIT.FAILURE,
    );
  }
  return record;
}

/**
 * The target of the ALIVE `role` service `id`, or of the only one.
 * @throws {CliError} exit 1 when there is none ({@linkcode NotAliveError} when
 * `id` exists but is not ALIVE), exit 64 when several and no `id`.
 */
export async function serviceOf(
  context: FabricContext,
  role: Role,
  id: string | undefined,
): Promise<Target> {
  const records = await context.registry.list();
  if (id) {
    const record = recordOf(records, role, id);
    if (record.state !== "ALIVE") {
      throw new NotAliveError(
        `The ${role} service "${id}" is ${record.state}, not ALIVE: see "fabricd status --all"`,
        record.state,
      );
    }
    return routeTo(record, records);
  }
  const candidates = records.filter((r) => r.role === role && r.state === "ALIVE");
  if (candidates.length === 0) throw noneAlive(records, role);
  if (candidates.length > 1) {
    throw usage(
      `The fabric has ${candidates.length} ${role} services: choose one with ${flagOf(role)} ID`,
    );
  }
  return routeTo(candidates[0]!, records);
}

/** Services of a role that {@linkcode noneAlive} names at most. */
const NAMED_AT_MOST = 5;

/**
 * Why no `role` service of `records` can serve (exit 1). One that has not
 * ended (dead, restarting) may come back with its state (a queue with its
 * tasks), so the services are named with their state and last failure, and a
 * new one is suggested only when every one has ended (a new queue starts empty).
 */
function noneAlive(records: ServiceRecord[], role: Role): CliError {
  const ofRole = records.filter((r) => r.role === role);
  if (ofRole.length === 0) {
    return new CliError(
      `No ${role} service in the fabric: start one with "fabricd spawn --role ${role}"`,
      EXIT.FAILURE,
    );
  }
  const waiting = ofRole.filter((r) => !ENDED_STATES.includes(r.state));
  const shown = waiting.length > 0 ? waiting : ofRole;
  const more = shown.length - NAMED_AT_MOST;
  const list = shown.slice(0, NAMED_AT_MOST).map(describe).join(", ") +
    (more > 0 ? ` and ${more} more` : "");
  const what = waiting.length > 0
    ? `wait until ${waiting.length === 1 ? "it is" : "one is"} ALIVE ` +
      `(see "fabricd status --role ${role}") rather than spawning a new one`
    : `start one with "fabricd spawn --role ${role}"`;
  return new CliError(`No ${role} service is ALIVE: ${list}: ${what}`, EXIT.FAILURE);
}

/** `"ID" is STATE (last failure: ...)`, the failure on one line and cut short. */
function describe(record: ServiceRecord): string {
  const failure = record.lastFailure.replace(/[\p{Cc}\s]+/gu, " ").trim();
  const cut = failure.length > 160 ? `${failure.slice(0, 159)}…` : failure;
  return `"${record.id}" is ${record.state}${cut ? ` (last failure: ${cut})` : ""}`;
}

function flagOf(role: Role): string {
  return FLAG_OF_ROLE[role] ?? `--${role}`;
}

/**
 * The target of `record`, one of `records`.
 * @throws {CliError} exit 1 when no route leads to it (no endpoint yet).
 */
export function routeTo(record: ServiceRecord, records: ServiceRecord[]): Target {
  try {
    return targetFor(record, records);
  } catch (error) {
    throw new CliError((error as Error).message, EXIT.FAILURE, { cause: error });
  }
}
