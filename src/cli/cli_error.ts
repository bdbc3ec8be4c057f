/**
 * The one error type commands throw: a message for a human and the exit code
 * from the README's table. `main.ts` prints it without a stack trace.
 * @module
 */
import type { FabricFileError } from "../config/fabric_file.ts";
import { KeyFileError } from "../crypto/keys.ts";
import { FabricRequestError } from "../client/fabric_client.ts";
import { EXIT, type ServiceRecord } from "../types/mod.ts";

/** A command failure with its exit code. */
export class CliError extends Error {
  /** The process exit code. */
  readonly exitCode: number;
  /** Builds the error. */
  constructor(message: string, exitCode: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}

/** A usage error: exit 64 with the command's help hint. */
export function usage(message: string): CliError {
  return new CliError(message, EXIT.USAGE);
}

/** Most characters of the user's input that an error message repeats. */
export const MAX_ECHOED_CHARS = 200;

/**
 * `text` (a flag's value, an argument) as an error message repeats it: whole
 * up to {@linkcode MAX_ECHOED_CHARS} characters, else their first ones and
 * "…", so that a 100 KB argument does not come back in full.
 */
export function echoed(text: string): string {
  return text.length > MAX_ECHOED_CHARS ? `${text.slice(0, MAX_ECHOED_CHARS)}…` : text;
}

/** Maps any error to a CliError with the documented exit code. */
export function toCliError(error: unknown): CliError {
  if (error instanceof CliError) return error;
  // By name, not instanceof: importing the fabric-file module would load the
  // YAML parser into every service process.
  if (isFabricFileError(error)) {
    // No path at all: an empty --fabric, which is the command line's fault.
    const code = error.path === "" ? EXIT.USAGE : error.missing ? EXIT.CONFIG : EXIT.DATA;
    return new CliError(error.message, code, { cause: error });
  }
  if (error instanceof KeyFileError) {
    const missing = error.cause instanceof Deno.errors.NotFound;
    return new CliError(error.message, missing ? EXIT.CONFIG : EXIT.DATA, { cause: error });
  }
  if (error instanceof FabricRequestError) {
    // Registry IDs are reg-...: an unreachable registry usually means the
    // fabric is not running.
    const hint = error.status === 0 && /service "reg-/.test(error.message)
      ? ': the registry does not answer; start the fabric with "fabricd up" (or check --fabric)'
      : "";
    return new CliError(
      `${error.message}${hint}`,
      error.status === 0 ? EXIT.UNREACHABLE : EXIT.FAILURE,
      { cause: error },
    );
  }
  if (error instanceof Deno.errors.AlreadyExists) {
    return new CliError(error.message, EXIT.CONFIG, { cause: error });
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new CliError(`${error.message}: check the directory's permissions`, EXIT.CONFIG);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new CliError(`Unexpected error: ${message}`, EXIT.FAILURE, { cause: error });
}

function isFabricFileError(error: unknown): error is FabricFileError {
  return error instanceof Error && error.name === "FabricFileError";
}

/** The error of a well-formed service ID the registry does not have (exit 1). */
export function unknownService(id: string): CliError {
  return new CliError(
    `No service "${id}" in the registry: see "fabricd status --all"`,
    EXIT.FAILURE,
  );
}

/**
 * The record of service `id` in `records`.
 * @throws {CliError} {@linkcode unknownService} when there is none.
 */
export function recordNamed(records: ServiceRecord[], id: string): ServiceRecord {
  const record = records.find((r) => r.id === id);
  if (!record) throw unknownService(id);
  return record;
}
