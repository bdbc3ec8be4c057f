/**
 * The `ssh://[user@]host[:port]` launcher: ships the fabricd image to the host,
 * forwards the parent's and the registries' ports to it through one
 * ControlMaster connection, and starts the service there detached from the
 * SSH session. The one-time password travels on the channel's standard input.
 * @module
 */
import { join } from "../base/paths.ts";
import { imageCommand } from "../image/self_command.ts";
import { selfImage } from "../image/self_image.ts";
import { COMPLETE, type SelfImage } from "../image/image_dir.ts";
import { prepareShip, REMOTE_CACHE, shipImage, warmImage } from "./ship_image.ts";
import type { RegistryEndpoint } from "../types/mod.ts";
import {
  checkRoleName,
  type ChildView,
  type LaunchedProcess,
  type Launcher,
  type LaunchSpec,
  type PrepareOptions,
  stopWarmProcesses,
  type WarmProcess,
} from "./launcher.ts";
import { parseSshUrl, shellQuote, SshConnection } from "./ssh_connection.ts";
import { SshWarmProcess, type Started } from "./ssh_warm.ts";

/** Options of {@linkcode SshLauncher}. */
export interface SshLauncherOptions {
  /** This service's state directory (control sockets, local bundle cache). */
  dir: string;
  /**
   * The spawner's service ID: its master connections get control sockets of
   * their own, apart from those of other services sharing `dir` on this host.
   */
  owner?: string;
  /** Seconds allowed to connect. Default 10. */
  connectTimeoutS?: number;
}

/** Starts fabricd on another host over OpenSSH. */
export class SshLauncher implements Launcher {
  readonly url: string;
  #ssh: SshConnection;
  #dir: string;
  #imageHash = "";
  /** The connection generation on which the host was last found to hold the image. */
  #imageReadyOn = -1;
  /** Warm processes on the host not handed over yet: ended by `close()`. */
  #warm = new Set<WarmProcess>();
  /** Their log files in the host's `logs/`, removed by `close()`. */
  #warmLogs = new Set<string>();
  #closed = false;
  /**
   * The reverse forwards on the host, by the origin they lead to (the parent,
   * each registry): made once per master connection and shared by every child
   * on the host, so spawns do not pile up listening ports there.
   */
  #forwards = new Map<string, { generation: number; url: string }>();

  /**
   * A launcher for `url`.
   * @throws {TypeError} for a malformed URL.
   */
  constructor(url: string, options: SshLauncherOptions) {
    this.url = url;
    this.#dir = options.dir;
    this.#ssh = new SshConnection(parseSshUrl(url), {
      controlDir: join(options.dir, "ssh"),
      ...(options.owner ? { owner: options.owner } : {}),
      ...(options.connectTimeoutS ? { connectTimeoutS: options.connectTimeoutS } : {}),
    });
  }

  /** The connection, for tests and benchmarks. */
  get connection(): SshConnection {
    return this.#ssh;
  }

  /**
   * Connects, ships the image if the host lacks it (telling `options.onProgress`
   * of the copy's bytes), and forwards the ports.
   */
  async prepare(
    parentUrl: string,
    registries: RegistryEndpoint[],
    options: PrepareOptions = {},
  ): Promise<ChildView> {
    // The image (and what a cold copy of it needs here) gets ready while the
    // connection opens; a host that cannot be reached fails the spawn at once.
    const ready = selfImage().then((image) => {
      prepareShip(image);
      return image;
    });
    ready.catch(() => {}); // awaited below, after the connection
    await this.#ssh.open();
    const image = await ready;
    // A warm spawn over a connection that already found the image skips the
    // check: the launch command checks it again on the host (see launch()).
    // A restart checks now: it is also what tells that the host answers again.
    if (
      options.recheck || image.hash !== this.#imageHash ||
      this.#imageReadyOn !== this.#ssh.generation
    ) {
      await this.#ship(image, options);
    }
    const forward = async (url: string): Promise<string> => {
      const origin = new URL(url);
      const generation = this.#ssh.generation;
      const known = this.#forwards.get(origin.host);
      if (known?.generation === generation) return known.url;
      const port = await this.#ssh.forwardRemote(Number(origin.port || 80));
      const there = `http://127.0.0.1:${port}`;
      this.#forwards.set(origin.host, { generation, url: there });
      return there;
    };
    const [parent, ...urls] = await Promise.all(
      [parentUrl, ...registries.map((r) => r.url)].map(forward),
    );
    return {
      parentUrl: parent!,
      registries: registries.map((r, i) => ({ id: r.id, url: urls[i]! })),
    };
  }

  /** Ships the image unless the host has it, and notes that it does on this connection. */
  async #ship(image: SelfImage, options: PrepareOptions): Promise<void> {
    const { onProgress } = options;
    const host = this.#ssh.target.host;
    const generation = this.#ssh.generation;
    const shipped = await shipImage(image, this.#ssh, {
      ...(onProgress
        ? { onCopy: (bytes, total) => onProgress({ step: "copy", detail: host, bytes, total }) }
        : {}),
    });
    if (shipped.copied) await warmImage(this.#ssh, image.hash);
    this.#imageHash = image.hash;
    this.#imageReadyOn = generation;
  }

  /**
   * Starts the service on the host; the password goes over standard input.
   * The launch command itself checks that the image is complete there: when
   * it is gone (the cache was emptied behind an open connection), the image is
   * shipped again and the launch retried once.
   */
  async launch(spec: LaunchSpec): Promise<LaunchedProcess> {
    if (!this.#imageHash) throw new Error("SshLauncher.prepare() must run before launch()");
    try {
      return await this.#launch(spec);
    } catch (error) {
      if (!(error instanceof ImageGoneError)) throw error;
      this.#imageReadyOn = -1;
      await this.#ship(await selfImage(), {});
      return await this.#launch(spec);
    }
  }

  async #launch(spec: LaunchSpec): Promise<LaunchedProcess> {
    const child = await this.#ssh.spawn(this.#startScript(spec.args, `${spec.id}.log`, true));
    const writer = child.stdin.getWriter();
    const lines = [
      spec.env.FABRIC_PARENT ?? "",
      spec.env.FABRIC_PIN ?? "",
      spec.env.FABRIC_OTP ?? "",
    ];
    await writer.write(new TextEncoder().encode(lines.join("\n") + "\n"));
    await writer.close();
    const started = await this.#started(child);
    return this.#launched(started, `${spec.id}.log`);
  }

  /**
   * The shell script that starts `fabricd ARGS` on the host, detached from the
   * SSH session by setsid, logging to `$c/logs/LOGNAME`. It answers `PID N`,
   * later `EXIT CODE`, or `NOIMAGE` when the image is not complete there.
   * With `readEnv`, the channel's first two lines are the parent and the
   * pin, and the rest of the channel (the password) is left for the service
   * to read on its stdin (fd 3 keeps it past the background job's
   * /dev/null): never exported, so /proc/PID/environ does not show it. A warm
   * process reads its hand-over line on that same stdin.
   */
  #startScript(args: readonly string[], logName: string, readEnv: boolean): string {
    const command = imageCommand(`$c/${this.#imageHash}`).map(quoteKeepVars).join(" ");
    const words = [...args, "--dir", "$c", "--listen", "127.0.0.1:0"].map(quoteKeepVars);
    return [
      `c=${REMOTE_CACHE}`,
      `[ -f "$c/${this.#imageHash}/${COMPLETE}" ] || { echo NOIMAGE; exit 0; }`,
      'mkdir -p "$c/logs"',
      ...(readEnv
        ? ["IFS= read -r FABRIC_PARENT; IFS= read -r FABRIC_PIN", "export FABRIC_PARENT FABRIC_PIN"]
        : []),
      "exec 3<&0",
      `cd "$c" && setsid ${command} ${words.join(" ")} >>"$c/logs/${logName}" 2>&1 <&3 3<&- &`,
      "pid=$!",
      "exec 3<&-",
      'echo "PID $pid"',
      'wait "$pid"; echo "EXIT $?"',
    ].join("\n");
  }

  /**
   * Reads the start script's first answer.
   * @throws {ImageGoneError} when the image is no longer on the host.
   * @throws {Error} when no PID came.
   */
  async #started(child: Deno.ChildProcess): Promise<Started> {
    const reader = lineReader(child.stdout);
    const first = await reader.next();
    if (first === "NOIMAGE") {
      child.stderr.cancel().catch(() => {});
      throw new ImageGoneError(this.#ssh.target.host);
    }
    const pid = Number(/^PID (\d+)$/.exec(first ?? "")?.[1] ?? 0);
    if (!pid) {
      const err = new TextDecoder().decode(
        (await child.output().catch(() => null))?.stderr ?? new Uint8Array(),
      );
      throw new Error(
        `Cannot start fabricd on ${this.#ssh.target.host}: ${err.trim() || "no PID reported"}`,
      );
    }
    // Nothing more is read from stderr; a stream already closed is fine.
    child.stderr.cancel().catch(() => {});
    const exited = (async () => {
      for (;;) {
        const line = await reader.next();
        // The session ended without the shell's report: the exit code is unknown.
        if (line === null) return -1;
        const code = /^EXIT (\d+)$/.exec(line)?.[1];
        if (code !== undefined) return Number(code);
      }
    })();
    return { child, pid, exited };
  }

  /** The service `started` is, logging to `logs/LOGNAME` on the host. */
  #launched(started: Started, logName: string): LaunchedProcess {
    const { pid, exited } = started;
    return {
      pid,
      host: this.#ssh.target.host,
      logFile: `${this.#ssh.target.host}:~/.cache/fabricd/logs/${logName}`,
      exited,
      reach: async (endpoint) => {
        const remote = Number(new URL(endpoint).port);
        const local = await this.#ssh.forwardLocal(remote);
        // The forward goes with the service: no listener is left behind per spawn.
        void exited.then(() => this.#ssh.cancelLocal(local, remote));
        return `http://127.0.0.1:${local}`;
      },
      kill: (signal: Deno.Signal = "SIGTERM") => this.#signal(pid, signal),
    };
  }

  #signal(pid: number, signal: Deno.Signal): void {
    void this.#ssh.exec(`kill -${signal.replace("SIG", "")} ${pid} 2>/dev/null`).catch(() => {});
  }

  /**
   * Starts a warm process of `role` on the host (docs/protocol.md 4.11): it
   * loads the code and waits on its channel's stdin for the hand-over line.
   * Needs a prepare() first (the image and the forwards).
   * @throws {Error} when the launcher is closed, not prepared, or the start fails.
   */
  async startWarm(role: string): Promise<WarmProcess> {
    checkRoleName(role);
    if (this.#closed) throw new Error("The ssh launcher is closed: no warm process started");
    if (!this.#imageHash) throw new Error("SshLauncher.prepare() must run before startWarm()");
    const logName = `warm-${role}-${crypto.randomUUID().slice(0, 12)}.log`;
    const child = await this.#ssh.spawn(
      this.#startScript(["--role", role, "--warm"], logName, false),
    );
    let started: Started;
    try {
      started = await this.#started(child);
    } catch (error) {
      await child.stdin.close().catch(() => {});
      throw error;
    }
    const warm = new SshWarmProcess(role, started, {
      handedOver: (spec) => {
        this.#warmLogs.delete(logName);
        // The open descriptor follows the file: from now on it logs to ID.log.
        void this.#ssh.exec(
          `cd ${REMOTE_CACHE}/logs && mv -f ${logName} ${shellQuote(`${spec.id}.log`)}`,
        ).catch(() => {});
        return this.#launched(started, `${spec.id}.log`);
      },
      signal: (signal) => this.#signal(started.pid, signal),
      release: () => this.#warm.delete(warm),
    });
    this.#warm.add(warm);
    this.#warmLogs.add(logName);
    return warm;
  }

  /** Ends the warm processes not handed over, then closes the SSH connection and its forwards. */
  async close(): Promise<void> {
    this.#closed = true;
    await stopWarmProcesses(this.#warm);
    // The logs of warm processes never handed over (at most a few per role).
    const logs = [...this.#warmLogs];
    this.#warmLogs.clear();
    if (logs.length > 0) {
      await this.#ssh.exec(`cd ${REMOTE_CACHE}/logs && rm -f ${logs.join(" ")}`, undefined, {
        timeoutMs: 5000,
      }).catch(() => {});
    }
    await this.#ssh.close();
  }
}

/** The host no longer holds the image this connection shipped (its cache was emptied). */
class ImageGoneError extends Error {
  constructor(host: string) {
    super(`The image is gone from ${host}'s cache`);
    this.name = "ImageGoneError";
  }
}

function quoteKeepVars(word: string): string {
  // Double quotes so "$c" expands on the host; nothing else in our words needs it.
  return `"${word.replace(/["\\`]/g, "\\$&")}"`;
}

function lineReader(stream: ReadableStream<Uint8Array>): { next(): Promise<string | null> } {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  return {
    async next(): Promise<string | null> {
      for (;;) {
        const end = buffer.indexOf("\n");
        if (end >= 0) {
          const line = buffer.slice(0, end);
          buffer = buffer.slice(end + 1);
          return line;
        }
        const { value, done } = await reader.read();
        if (done) {
          const rest = buffer;
          buffer = "";
          return rest === "" ? null : rest;
        }
        buffer += value;
      }
    },
  };
}
