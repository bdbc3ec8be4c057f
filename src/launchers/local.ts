/**
 * The `local://` launcher: starts fabricd as a new process on this host.
 *
 * The child is detached (its own session and process group), so it outlives its
 * spawner: a crashed spawner or application must not take the fabric down with
 * it (docs/architecture.md, "Process lifetime"). Its standard output and error
 * go to a per-service log file. The one-time password goes on its standard
 * input, a pipe only the child reads: never in its environment, which
 * /proc/PID/environ shows for the process's whole life.
 * @module
 */
import { join } from "node:path";
import { selfCommand } from "../image/self_command.ts";
import type { RegistryEndpoint } from "../types/mod.ts";
import type { ChildView, LaunchedProcess, Launcher, LaunchSpec } from "./launcher.ts";

/** Options of {@linkcode LocalLauncher}. */
export interface LocalLauncherOptions {
  /** State directory the children share; logs go to `<dir>/logs/<id>.log`. */
  dir: string;
}

/** Starts fabricd processes on this host. */
export class LocalLauncher implements Launcher {
  readonly url = "local://";
  #dir: string;

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
    const logDir = join(this.#dir, "logs");
    await Deno.mkdir(logDir, { recursive: true, mode: 0o700 });
    const logFile = join(logDir, `${spec.id}.log`);
    const self = selfCommand();
    // sh redirects output to the log file so the child keeps no pipe to us
    // and survives our death without SIGPIPE; its stdin is a pipe that we
    // close once the password is written.
    const { FABRIC_OTP: password = "", ...env } = spec.env;
    const child = new Deno.Command("/bin/sh", {
      args: [
        "-c",
        'exec "$0" "$@" >>"$FABRIC_LOG_FILE" 2>&1',
        self.executable,
        ...self.prefix,
        ...spec.args,
        ...(spec.args.includes("--dir") ? [] : ["--dir", this.#dir]),
      ],
      env: { ...env, FABRIC_LOG_FILE: logFile },
      stdin: "piped",
      stdout: "null",
      stderr: "null",
      detached: true,
    }).spawn();
    const writer = child.stdin.getWriter();
    // A child that died at once closed its stdin; its exit is reported below.
    await writer.write(new TextEncoder().encode(`${password}\n`)).catch(() => {});
    await writer.close().catch(() => {});
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
      reach: (endpoint) => Promise.resolve(endpoint),
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
