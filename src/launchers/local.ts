/**
 * The `local://` launcher: starts fabricd as a new process on this host.
 *
 * The child is detached (its own session and process group), so it outlives its
 * spawner: a crashed spawner or application must not take the fabric down with
 * it (docs/architecture.md, "Process lifetime"). Its standard output and error
 * go to a per-service log file. The one-time password goes on its standard
 * input, a pipe only the child reads: never in its environment, which
 * /proc/PID/environ shows for the process's whole life.
 *
 * A process may also be started ahead of its spawn, warm (`startWarm`): it
 * loads the code and waits on its stdin pipe for its ID, role and password
 * (docs/protocol.md 4.11). Until it is handed over it belongs to this launcher,
 * which ends it on `close()`; it also ends by itself when the pipe closes, so a
 * spawner that dies leaves none behind.
 * @module
 */
import { join } from "../base/paths.ts";
import { selfCommand } from "../image/self_command.ts";
import type { RegistryEndpoint } from "../types/mod.ts";
import {
  checkRoleName,
  type ChildView,
  type LaunchedProcess,
  type Launcher,
  type LaunchSpec,
  stopWarmProcesses,
  warmHandOverLine,
  type WarmProcess,
} from "./launcher.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";

/** Options of {@linkcode LocalLauncher}. */
export interface LocalLauncherOptions {
  /** State directory the children share; logs go to `<dir>/logs/<id>.log`. */
  dir: string;
}

/** Starts fabricd processes on this host. */
export class LocalLauncher implements Launcher {
  readonly url = "local://";
  #dir: string;
  /** Warm processes not handed over yet: ended by `close()`. */
  #warm = new Set<WarmProcess>();
  #closed = false;

  /** A launcher for children sharing the state directory `options.dir`. */
  constructor(options: LocalLauncherOptions) {
    this.#dir = options.dir;
  }

  /** Local children reach the parent and the registries as this host does. */
  prepare(parentUrl: string, registries: RegistryEndpoint[]): Promise<ChildView> {
    return Promise.resolve({ parentUrl, registries });
  }

  /**
   * Starts `fabricd ARGS` detached, with `spec.env` added to this environment
   * except `FABRIC_OTP`, which is written to the child's standard input.
   * @throws {Error} when the log directory cannot be created or the process cannot start.
   */
  async launch(spec: LaunchSpec): Promise<LaunchedProcess> {
    const logFile = join(await this.#logDir(), `${spec.id}.log`);
    const { FABRIC_OTP: password = "", ...env } = spec.env;
    const child = this.#start([
      ...spec.args,
      ...(spec.args.includes("--dir") ? [] : ["--dir", this.#dir]),
    ], { ...env, FABRIC_LOG_FILE: logFile });
    const writer = child.stdin.getWriter();
    // A child that died at once closed its stdin; its exit is reported below.
    await writer.write(new TextEncoder().encode(`${password}\n`)).catch(() => {});
    await writer.close().catch(() => {});
    return launched(child, exitCodeOf(child), logFile);
  }

  /**
   * Starts `fabricd --role ROLE --warm` detached, its log in
   * `logs/warm-ROLE-RANDOM.log`, its stdin a pipe this launcher keeps open
   * until the hand-over.
   * @throws {Error} when the launcher is closed, or the process cannot start.
   */
  async startWarm(role: string): Promise<WarmProcess> {
    checkRoleName(role);
    const logDir = await this.#logDir();
    if (this.#closed) throw new Error("The local launcher is closed: no warm process started");
    const suffix = crypto.getRandomValues(new Uint8Array(6)).reduce(
      (text, byte) => text + byte.toString(16).padStart(2, "0"),
      "",
    );
    const warmLog = join(logDir, `warm-${role}-${suffix}.log`);
    const child = this.#start(["--role", role, "--warm", "--dir", this.#dir], {
      FABRIC_LOG_FILE: warmLog,
    });
    const warm = new LocalWarmProcess(role, child, warmLog, logDir, () => this.#warm.delete(warm));
    this.#warm.add(warm);
    return warm;
  }

  /**
   * Runs one throwaway warm process of `role` to its end (its standard input
   * is empty, so it exits once it has loaded the code). The first process on
   * a host that loads a version of fabricd makes Deno parse every module for
   * its cache (`DENO_DIR`), and keeps the memory of that parse for its whole
   * life: 8-12 MB of a registry (docs/performance.md "idle-memory"). Run
   * before a long-lived first service, this one pays it and exits.
   * @returns whether it ended cleanly within `timeoutMs`; a failure only
   * leaves the next service to pay the parse.
   */
  async warmCaches(role: string, timeoutMs = 30_000): Promise<boolean> {
    checkRoleName(role);
    const self = selfCommand();
    try {
      const out = await new Deno.Command(self.executable, {
        args: [...self.prefix, "--role", role, "--warm", "--dir", this.#dir],
        stdin: "null",
        stdout: "null",
        stderr: "null",
        signal: AbortSignal.timeout(timeoutMs),
      }).output();
      return out.success;
    } catch {
      return false;
    }
  }

  /** Ends the warm processes not handed over; the services it started keep running. */
  async close(): Promise<void> {
    this.#closed = true;
    await stopWarmProcesses(this.#warm);
  }

  async #logDir(): Promise<string> {
    const logDir = join(this.#dir, "logs");
    await Deno.mkdir(logDir, { recursive: true, mode: 0o700 });
    return logDir;
  }

  #start(args: string[], env: Record<string, string>): Deno.ChildProcess {
    const self = selfCommand();
    // sh redirects output to the log file so the child keeps no pipe to us
    // and survives our death without SIGPIPE; its stdin is a pipe that we
    // close once the password is written.
    return new Deno.Command("/bin/sh", {
      args: [
        "-c",
        'exec "$0" "$@" >>"$FABRIC_LOG_FILE" 2>&1',
        self.executable,
        ...self.prefix,
        ...args,
      ],
      env,
      stdin: "piped",
      stdout: "null",
      stderr: "null",
      detached: true,
    }).spawn();
  }
}

/** A warm process of {@linkcode LocalLauncher}. */
class LocalWarmProcess implements WarmProcess {
  readonly role: string;
  readonly pid: number;
  readonly exited: Promise<number>;
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #log: string;
  #logDir: string;
  #release: () => void;
  #used = false;

  constructor(
    role: string,
    child: Deno.ChildProcess,
    log: string,
    logDir: string,
    release: () => void,
  ) {
    this.role = role;
    this.pid = child.pid;
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#log = log;
    this.#logDir = logDir;
    this.#release = release;
    this.exited = exitCodeOf(child);
    // A warm process that ends by itself (EOF, a crash) is no longer ours to stop.
    void this.exited.then(release);
  }

  async handOver(spec: LaunchSpec): Promise<LaunchedProcess> {
    if (this.#used) throw new Error(`Warm process ${this.pid} was already handed over or stopped`);
    const line = warmHandOverLine(this.role, spec);
    this.#used = true;
    this.#release();
    // The open descriptor follows the file: what the service logs from now on lands in ID.log.
    const target = join(this.#logDir, `${spec.id}.log`);
    const logFile = await Deno.rename(this.#log, target).then(() => target, () => this.#log);
    // A process that died meanwhile closed the pipe; its exit is reported below.
    await this.#writer.write(new TextEncoder().encode(`${line}\n`)).catch(() => {});
    await this.#writer.close().catch(() => {});
    return launched(this.#child, this.exited, logFile);
  }

  async stop(): Promise<void> {
    if (this.#used) return;
    this.#used = true;
    this.#release();
    // End of input is the warm process's signal to exit 0; SIGTERM if it does not.
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => kill(this.#child, "SIGTERM"), 2000);
    const late = setTimeout(() => kill(this.#child, "SIGKILL"), 5000);
    await this.exited;
    clearTimeout(timer);
    clearTimeout(late);
    await Deno.remove(this.#log).catch(() => {});
  }
}

function launched(
  child: Deno.ChildProcess,
  exited: Promise<number>,
  logFile: string,
): LaunchedProcess {
  let done = false;
  void exited.then(() => (done = true));
  return {
    pid: child.pid,
    host: Deno.hostname(),
    logFile,
    exited,
    reach: (endpoint) => Promise.resolve(endpoint),
    kill(signal: Deno.Signal = "SIGTERM") {
      if (!done) kill(child, signal);
    },
  };
}

function exitCodeOf(child: Deno.ChildProcess): Promise<number> {
  return child.status.then((status) =>
    status.signal ? 128 + signalNumber(status.signal) : status.code
  );
}

function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // Already gone: nothing to stop.
  }
}

function signalNumber(signal: Deno.Signal): number {
  const numbers: Partial<Record<Deno.Signal, number>> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGKILL: 9,
    SIGTERM: 15,
  };
  return numbers[signal] ?? 0;
}
