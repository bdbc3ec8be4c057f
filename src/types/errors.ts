/**
 * The errors that logic throws and the edges translate: each carries the HTTP
 * status the management API answers with and the exit code a command ends
 * with, so `api/` and `cli/` map errors without knowing them by name.
 * @module
 */
import { EXIT } from "./mod.ts";

/** An error with a known meaning at the edges (HTTP status, exit code). */
export class FabricError extends Error {
  /** The HTTP status of an API answer that carries this error. */
  readonly httpStatus: number;
  /** The exit code of a command or service that ends with this error. */
  readonly exitCode: number;
  /** Builds the error. */
  constructor(
    message: string,
    codes: { status: number; exitCode?: number },
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
    this.httpStatus = codes.status;
    this.exitCode = codes.exitCode ?? EXIT.FAILURE;
  }
}

/** A request that conflicts with the service's state (HTTP 409). */
export class ConflictError extends FabricError {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, { status: 409 }, options);
  }
}

/** A bootstrap that the parent refuses: wrong, used, expired or burnt password (HTTP 403). */
export class BootstrapRefusedError extends FabricError {
  /** Builds the error. */
  constructor(message: string) {
    super(message, { status: 403, exitCode: EXIT.REFUSED });
  }
}

/** Too many refused bootstrap attempts from one source (HTTP 429 with Retry-After). */
export class RateLimitedError extends FabricError {
  /** Seconds the source should wait. */
  readonly retryAfterSeconds: number;
  /** Builds the error. */
  constructor(message: string, retryAfterSeconds: number) {
    super(message, { status: 429, exitCode: EXIT.REFUSED });
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** A spawn that failed, with the reason and the child's exit code if it had one (HTTP 502). */
export class SpawnFailedError extends FabricError {
  /** The new service's ID. */
  readonly serviceId: string;
  /** Exit code of the child, or null when it did not exit. */
  readonly childExitCode: number | null;
  /** Builds the error. */
  constructor(serviceId: string, message: string, childExitCode: number | null) {
    super(message, { status: 502 });
    this.serviceId = serviceId;
    this.childExitCode = childExitCode;
  }
}

/**
 * Thrown by a role's `start()` when a restarted service cannot pick up its
 * old state; the service then exits 79 and is marked FAILED, then LOST.
 */
export class StateLostError extends FabricError {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, { status: 409, exitCode: EXIT.STATE_LOST }, options);
  }
}
