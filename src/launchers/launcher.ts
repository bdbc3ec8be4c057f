/**
 * How a process is started on a target (DESIGN.md "Words": launcher), in the
 * URL style of SAGA job adaptors: `local://`, `ssh://[user@]host[:port]`,
 * `slurm://[partition]`.
 * @module
 */
import type { RegistryEndpoint } from "../types/mod.ts";
import { EXIT } from "../types/mod.ts";
import { FabricError } from "../types/errors.ts";
import type { SpawnProgressListener } from "../types/spawn_progress.ts";

/** What to start. Secrets travel in `env` only, never in `args`. */
export interface LaunchSpec {
  /** Service ID of the new process. */
  id: string;
  /** Arguments after the fabricd executable, e.g. `--role spawner --id x`. */
  args: string[];
  /** Environment for the new process: `FABRIC_OTP`, `FABRIC_PARENT`, `FABRIC_PIN`. */
  env: Record<string, string>;
  /**
   * The service's options (`cores`, `walltime`, ...); batch launchers turn the
   * resource ones into their job's request. Default: none.
   */
  options?: Record<string, string>;
}

/** The parent and the registries as the new process reaches them. */
export interface ChildView {
  parentUrl: string;
  registries: RegistryEndpoint[];
}

/** Options of {@linkcode Launcher.prepare}. */
export interface PrepareOptions {
  /**
   * Told of the steps the launcher takes (an image copy and its bytes).
   * Default: nobody; launchers with nothing to tell ignore it.
   */
  onProgress?: SpawnProgressListener;
  /**
   * Check the host now, even when this connection already found it ready (a
   * restart: the check is also what tells that the host answers again).
   * Default: false; launchers that check nothing ignore it.
   */
  recheck?: boolean;
}

/** A started process, as far as the launcher can see it. */
export interface LaunchedProcess {
  /** Process ID on the target (0 when the launcher cannot tell). */
  pid: number;
  /** Host name of the target. */
  host: string;
  /** Where the process writes its log (on the target). */
  logFile: string;
  /**
   * Resolves with the exit code when the process ends, or -1 when the launcher
   * lost sight of it (an SSH session that broke) without learning its end.
   */
  exited: Promise<number>;
  /** The child's endpoint (as it reported it) turned into one this host can reach. */
  reach(childEndpoint: string): Promise<string>;
  /** Sends a signal to the process; a process already gone is not an error. */
  kill(signal?: Deno.Signal): void;
  /**
   * Why the process ended, in the launcher's words (e.g. "Slurm job 12 CANCELLED"),
   * once `exited` has resolved; undefined when the launcher knows no more than the code.
   */
  endReason?(): string | undefined;
}

/** Starts processes on one kind of target. */
export interface Launcher {
  /** The launcher's URL, e.g. `local://`. */
  readonly url: string;
  /**
   * Makes `parentUrl` and the registries reachable from the target (port
   * forwards for ssh) and says how the child will reach them.
   * @throws {Error} with a reason a human can act on.
   */
  prepare(
    parentUrl: string,
    registries: RegistryEndpoint[],
    options?: PrepareOptions,
  ): Promise<ChildView>;
  /**
   * Starts a process.
   * @throws {Error} with a reason a human can act on when it cannot start.
   */
  launch(spec: LaunchSpec): Promise<LaunchedProcess>;
  /**
   * How long a launched process may take to bootstrap, ms, which is also how
   * long its one-time password lives. Batch launchers answer with the time a
   * job may wait in the queue; without this method the spawner's default holds.
   */
  bootstrapWindowMs?(spec: LaunchSpec): number;
  /**
   * Batch launchers: follows the job that runs `serviceId`, submitted by an
   * earlier incarnation of the spawner, so its batch state is known again.
   * @returns false when no such job runs.
   */
  follow?(serviceId: string): Promise<boolean>;
  /** Releases what the launcher holds (SSH connections); the processes it started keep running. */
  close?(): Promise<void>;
}

/** A launcher URL that is malformed or names a launcher this build lacks. */
export class LauncherUrlError extends FabricError {
  /** Builds the error. */
  constructor(message: string) {
    super(message, { status: 400, exitCode: EXIT.USAGE });
  }
}

/**
 * A fabricd process started with `--warm` (docs/protocol.md 4.11), waiting on
 * its stdin for the service it will become. Not a service yet: it listens on
 * nothing and is in no registry.
 */
export interface WarmProcess {
  /** The role whose code it has loaded. */
  readonly role: string;
  readonly pid: number;
  /** Resolves with its exit code when it ends, handed over or not. */
  readonly exited: Promise<number>;
  /**
   * Makes it the service `spec` describes (`--role ROLE --id ID`, the
   * password and parent in `spec.env`): its log becomes `logs/ID.log` and the
   * hand-over line goes down its stdin, which is then closed.
   * @throws {RangeError} when `spec` is for another role, or lacks the password, parent or pin.
   * @throws {Error} when it was handed over or stopped already.
   */
  handOver(spec: LaunchSpec): Promise<LaunchedProcess>;
  /** Ends it unless it was handed over: its stdin is closed, then SIGTERM; idempotent. */
  stop(): Promise<void>;
}

/**
 * Refuses a role name that could not be one (it goes into a command line):
 * a lower-case word of up to 32 letters and dashes.
 * @throws {RangeError} naming it.
 */
export function checkRoleName(role: string): void {
  if (!/^[a-z][a-z-]{0,31}$/.test(role)) throw new RangeError(`Invalid role "${role}"`);
}

/** Ends every warm process in `warm` not handed over yet, and empties the set. */
export async function stopWarmProcesses(warm: Set<WarmProcess>): Promise<void> {
  const waiting = [...warm];
  warm.clear();
  await Promise.all(waiting.map((process) => process.stop()));
}

/**
 * The one JSON line a warm process reads: everything it needs to bootstrap.
 * @throws {RangeError} when `spec` is not `--role ROLE --id ID` of `role`, or lacks a secret.
 */
export function warmHandOverLine(role: string, spec: LaunchSpec): string {
  const [roleFlag, specRole, idFlag, id, ...rest] = spec.args;
  if (roleFlag !== "--role" || idFlag !== "--id" || rest.length > 0 || id !== spec.id) {
    throw new RangeError(`A warm process takes "--role ROLE --id ID" only, not "${spec.args}"`);
  }
  if (specRole !== role) {
    throw new RangeError(`A warm ${role} process cannot become a ${specRole}`);
  }
  const { FABRIC_OTP: password, FABRIC_PARENT: parent, FABRIC_PIN: pin } = spec.env;
  if (!password || !parent || !pin) {
    throw new RangeError("A warm process needs FABRIC_OTP, FABRIC_PARENT and FABRIC_PIN");
  }
  return JSON.stringify({ id, role, password, parent, pin });
}
