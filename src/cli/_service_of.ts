/**
 * The one ALIVE service of a role that a command talks to, by ID or, when the
 * fabric has just one, without.
 * @module
 */
import type { Target } from "../client/fabric_client.ts";
import { targetFor } from "../client/route.ts";
import { EXIT, type Role, type ServiceRecord, type ServiceState } from "../types/mod.ts";
import { CliError, recordNamed, usage } from "./cli_error.ts";
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
  if (candidates.length === 0) {
    throw new CliError(
      `No ${role} service in the fabric: start one with "fabricd spawn --role ${role}"`,
      EXIT.FAILURE,
    );
  }
  if (candidates.length > 1) {
    throw usage(
      `The fabric has ${candidates.length} ${role} services: choose one with ${
        FLAG_OF_ROLE[role] ?? `--${role}`
      } ID`,
    );
  }
  return routeTo(candidates[0]!, records);
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
