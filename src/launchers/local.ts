/**
 * The `local://` launcher: starts fabricd as a new process on this host.
 *
 * The child is detached (its own session and process group), so it outlives its
 * spawner: a crashed spawner or application must not take the fabric down with
 * it (docs/architecture.md, "Process lifetime"). Its standard output and error
 * go to a per-service log file.
 * @module
 */
import { join } from "node:path";
import { selfCommand } from "../image/self_command.ts";
import type { LaunchedProcess, Launcher, LaunchSpec } from "./launcher.ts";

/** Options of {@linkcode LocalLauncher}. */
export interface LocalLauncherOptions {
  /** Directory for per-service log files `<id>.log`; created if missing. */
  logDir: string;
}

/** Starts fabricd processes on this host. */
export class LocalLauncher implements Launcher {
  readonly url = "local://";
  #logDir: string;

  /** A launcher writing logs under `options.logDir`. */
  constructor(options: LocalLauncherOptions) {
    this.#logDir = options.logDir;
  }

  /**
   * Starts `fabricd ARGS` detached, with `spec.env` added to this environment.
   * @throws {Error} when the log directory cannot be created or the process cannot start.
   */
  async launch(spec: LaunchSpec): Promise<LaunchedProcess> {
    await Deno.mkdir(this.#logDir, { recursive: true, mode: 0o700 });
    const logFile = join(this.#logDir, `${spec.id}.log`);
    const self = selfCommand();
    // sh redirects output to the log file so the child keeps no pipe to us
    // and survives our death without SIGPIPE.
    const child = new Deno.Command("/bin/sh", {
      args: [
        "-c",
        'exec "$0" "$@" >>"$FABRIC_LOG_FILE" 2>&1 </dev/null',
        self.executable,
        ...self.prefix,
        ...spec.args,
      ],
      env: { ...spec.env, FABRIC_LOG_FILE: logFile },
      stdin: "null",
      stdout: "null",
      stderr: "null",
      detached: true,
    }).spawn();
    let done = false;
    const exited = child.status.then((status) => {
      done = true;
      return status.signal ? 128 + signalNumber(status.signal) : status.code;
    });
    return {
      pid: child.pid,
      host: Deno.hostname(),
      logFile,
      exited,
      kill(signal: Deno.Signal = "SIGTERM") {
        if (done) return;
        try {
          child.kill(signal);
        } catch {
          // Already gone: nothing to stop.
        }
      },
    };
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
