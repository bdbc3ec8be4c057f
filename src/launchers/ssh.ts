/**
 * The `ssh://[user@]host[:port]` launcher: ships the fabricd image to the host,
 * forwards the parent's and the registries' ports to it through one
 * ControlMaster connection, and starts the service there detached from the
 * SSH session. The one-time password travels on the channel's standard input.
 * @module
 */
import { join } from "node:path";
import { imageCommand } from "../image/self_command.ts";
import { selfImage } from "../image/self_image.ts";
import { REMOTE_CACHE, shipImage } from "./ship_image.ts";
import type { RegistryEndpoint } from "../types/mod.ts";
import type {
  ChildView,
  LaunchedProcess,
  Launcher,
  LaunchSpec,
  PrepareOptions,
} from "./launcher.ts";
import { parseSshUrl, SshConnection } from "./ssh_connection.ts";

/** Options of {@linkcode SshLauncher}. */
export interface SshLauncherOptions {
  /** This service's state directory (control sockets, local bundle cache). */
  dir: string;
  /** Seconds allowed to connect. Default 10. */
  connectTimeoutS?: number;
}

/** Starts fabricd on another host over OpenSSH. */
export class SshLauncher implements Launcher {
  readonly url: string;
  #ssh: SshConnection;
  #dir: string;
  #imageHash = "";
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
    await this.#ssh.open();
    const image = await selfImage();
    const { onProgress } = options;
    const host = this.#ssh.target.host;
    // Also the one round trip that tells a restart the host answers again.
    await shipImage(image, this.#ssh, {
      ...(onProgress
        ? { onCopy: (bytes, total) => onProgress({ step: "copy", detail: host, bytes, total }) }
        : {}),
    });
    this.#imageHash = image.hash;
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

  /** Starts the service on the host; the password goes over standard input. */
  async launch(spec: LaunchSpec): Promise<LaunchedProcess> {
    if (!this.#imageHash) throw new Error("SshLauncher.prepare() must run before launch()");
    const command = imageCommand(`$c/${this.#imageHash}`).map(quoteKeepVars).join(" ");
    const args = [...spec.args, "--dir", "$c", "--listen", "127.0.0.1:0"].map(quoteKeepVars).join(
      " ",
    );
    const log = `$c/logs/${spec.id}.log`;
    // setsid detaches the service from the SSH session; this shell stays to
    // report the exit code while the session lasts.
    const script = [
      `c=${REMOTE_CACHE}`,
      'mkdir -p "$c/logs"',
      // The password is the channel's third line: left there for the service
      // to read on its stdin (fd 3 keeps it past the background job's
      // /dev/null), never exported, so /proc/PID/environ does not show it.
      "IFS= read -r FABRIC_PARENT; IFS= read -r FABRIC_PIN",
      "export FABRIC_PARENT FABRIC_PIN",
      "exec 3<&0",
      `cd "$c" && setsid ${command} ${args} >>"${log}" 2>&1 <&3 3<&- &`,
      "pid=$!",
      "exec 3<&-",
      'echo "PID $pid"',
      'wait "$pid"; echo "EXIT $?"',
    ].join("\n");
    const child = await this.#ssh.spawn(script);
    const writer = child.stdin.getWriter();
    const lines = [
      spec.env.FABRIC_PARENT ?? "",
      spec.env.FABRIC_PIN ?? "",
      spec.env.FABRIC_OTP ?? "",
    ];
    await writer.write(new TextEncoder().encode(lines.join("\n") + "\n"));
    await writer.close();
    const reader = lineReader(child.stdout);
    const first = await reader.next();
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
    return {
      pid,
      host: this.#ssh.target.host,
      logFile: `${this.#ssh.target.host}:~/.cache/fabricd/logs/${spec.id}.log`,
      exited,
      reach: async (endpoint) => {
        const remote = Number(new URL(endpoint).port);
        const local = await this.#ssh.forwardLocal(remote);
        // The forward goes with the service: no listener is left behind per spawn.
        void exited.then(() => this.#ssh.cancelLocal(local, remote));
        return `http://127.0.0.1:${local}`;
      },
      kill: (signal: Deno.Signal = "SIGTERM") => {
        void this.#ssh.exec(`kill -${signal.replace("SIG", "")} ${pid} 2>/dev/null`).catch(
          () => {},
        );
      },
    };
  }

  /** Closes the SSH connection and its forwards. */
  close(): Promise<void> {
    return this.#ssh.close();
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
