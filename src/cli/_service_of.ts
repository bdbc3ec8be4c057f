/**
 * The one ALIVE service of a role that a command talks to, by ID or, when the
 * fabric has just one, without.
 * @module
 */
import type { Target } from "../client/fabric_client.ts";
import { targetFor } from "../client/route.ts";
import { EXIT, type Role } from "../types/mod.ts";
import { CliError, usage } from "./cli_error.ts";
import type { FabricContext } from "./context.ts";

/**
 * The target of the ALIVE `role` service `id`, or of the only one.
 * @throws {CliError} exit 1 when there is none, exit 64 when several and no `id`.
 */
export async function serviceOf(
  context: FabricContext,
  role: Role,
  id: string | undefined,
): Promise<Target> {
  const records = await context.registry.list();
  const candidates = records.filter((r) =>
    r.role === role && r.state === "ALIVE" && (!id || r.id === id)
  );
  if (candidates.length === 0) {
    throw new CliError(
      id
        ? `No ALIVE ${role} service "${id}": see "fabricd status"`
        : `No ${role} service in the fabric: start one with "fabricd spawn --role ${role}"`,
      EXIT.FAILURE,
    );
  }
  if (candidates.length > 1) {
    throw usage(
      `The fabric has ${candidates.length} ${role} services: choose one with --${role} ID`,
    );
  }
  return targetFor(candidates[0]!, records);
}
