/**
 * One OpenSSH connection to a host, shared by every command and port forward
 * to it (ControlMaster). The system's `ssh` is used on purpose: the user's
 * `~/.ssh/config`, ProxyJump, agents and a site's MFA keep working.
 * @module
 */
import { join } from "../base/paths.ts";
import { sleep } from "../config/retry.ts";
import { explainSshFailure, SshError, sshUnreachable } from "./ssh_failure.ts";
import {
  endOrphanMasters,
  type OrphanMaster,
  orphanMasters,
  userControlPath,
} from "./_control_sockets.ts";

export { SshError };

/** Where and how to connect: `ssh://[user@]host[:port]`. */
export interface SshTarget {
  host: string;
  user?: string;
  port?: number;
}

/** Options of {@linkcode SshConnection}. */
export interface SshConnectionOptions {
  /** Directory for the control socket (kept short: sockets have a path limit). */
  controlDir: string;
  /**
   * Who opens it (a service ID): part of the socket's name, so that two
   * services sharing `controlDir` on a host (two bridges) never take over or
   * remove each other's master. Its next incarnation uses the same name.
   */
  owner?: string;
  /** Seconds allowed to connect. Default 10. */
  connectTimeoutS?: number;
}

/** What a remote command printed and how it ended. */
export interface SshResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Parses `ssh://[user@]host[:port]`.
 * @throws {TypeError} for anything else.
 */
export function parseSshUrl(url: string): SshTarget {
  const match =
    /^ssh:\/\/(?:([A-Za-z0-9._-]+)@)?([A-Za-z0-9._-]+|\[[0-9A-Fa-f:]+\])(?::(\d{1,5}))?\/?$/
      .exec(url);
  if (!match) {
    throw new TypeError(`Invalid launcher "${url}": use ssh://[user@]host[:port]`);
  }
  const target: SshTarget = { host: match[2]! };
  if (match[1]) target.user = match[1];
  if (match[3]) target.port = Number(match[3]);
  return target;
}

/** A ControlMaster connection and the commands that ride on it. */
export class SshConnection {
  readonly target: SshTarget;
  #options: Required<SshConnectionOptions>;
  #controlPath: string;
  #master: Deno.ChildProcess | null = null;
  #opening: Promise<void> | null = null;
  /**
   * True while our commands ride on a master the user opened on their own
   * ControlPath: it is theirs, so it is never stopped and its socket never removed.
   */
  #borrowed = false;
  /** Forwards made on the user's master: cancelled on close, as ours end with our master. */
  #borrowedForwards = new Set<string>();
  #generation = 0;
  /**
   * Masters left running by an earlier process of the same owner that died
   * (SIGKILL): the services it started may still use their forwards, so they
   * are ended only when this connection closes.
   */
  #orphans: OrphanMaster[] = [];

  /** A connection to `target`, opened on first use. */
  constructor(target: SshTarget, options: SshConnectionOptions) {
    this.target = target;
    this.#options = { connectTimeoutS: 10, owner: "", ...options };
    const owner = options.owner ? `${options.owner}|` : "";
    const tag = `${owner}${target.user ?? ""}@${target.host}:${target.port ?? 22}`;
    // One socket per process: an earlier incarnation still running (replaced,
    // about to stop) never ends this one's master through the same path.
    this.#controlPath = join(options.controlDir, `cm-${shortHash(tag)}-${Deno.pid}`);
  }

  /**
   * Counts the master connections opened so far: forwards made under an
   * earlier one are gone with it.
   */
  get generation(): number {
    return this.#generation;
  }

  /** The `user@host` (or `host`) ssh is given. */
  get destination(): string {
    return this.target.user ? `${this.target.user}@${this.target.host}` : this.target.host;
  }

  /**
   * Opens the master connection if it is not open.
   * @throws {SshError} when the host cannot be reached or refuses us; the
   * message says why (timeout, changed host key, authentication).
   */
  open(): Promise<void> {
    this.#opening ??= this.#open().catch((error) => {
      this.#opening = null;
      throw error;
    });
    return this.#opening;
  }

  async #open(): Promise<void> {
    this.#generation++;
    await Deno.mkdir(this.#options.controlDir, { recursive: true, mode: 0o700 });
    // A master the user opened on the ControlPath of their configuration
    // (after a site's MFA prompt) carries our commands too. When none answers
    // there we open our own in our directory: a master of ours on their path
    // would carry their sessions and end them on close, and a stale socket
    // there is theirs to remove.
    const userPath = await userControlPath(this.destination, this.target.port);
    if (userPath !== null && (await this.#control(["-O", "check"], true)).code === 0) {
      this.#borrowed = true;
      return;
    }
    // A stale socket of an earlier master of ours, if any; usually there is none.
    await Deno.remove(this.#controlPath).catch(() => {});
    const check = (path: string) => this.#control(["-O", "check"], false, path);
    const known = new Set(this.#orphans.map((o) => o.path));
    const found = await orphanMasters(this.#controlPath, check);
    this.#orphans.push(...found.filter((o) => !known.has(o.path)));
    const master = new Deno.Command("ssh", {
      args: [...this.#baseArgs(true), "-N", "-o", "ControlPersist=no", this.destination],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#master = master;
    const errors = collect(master.stderr);
    const deadline = Date.now() + (this.#options.connectTimeoutS + 2) * 1000;
    let ended: Deno.CommandStatus | null = null;
    master.status.then((status) => (ended = status));
    while (Date.now() < deadline) {
      if (ended) {
        const stderr = await errors;
        throw new SshError(
          this.#noUserMaster(userPath, explainSshFailure(this.target.host, stderr)),
          { unreachable: sshUnreachable(stderr) },
        );
      }
      if (await this.#check()) {
        // A master that ends later (a cut link, ServerAlive, a killed ssh)
        // takes its forwards with it: the next use opens a new one, a new
        // generation, and the forwards are made again.
        master.status.then(() => {
          if (this.#master !== master) return;
          this.#master = null;
          this.#opening = null;
        });
        return;
      }
      await sleep(50);
    }
    try {
      master.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    throw new SshError(
      this.#noUserMaster(
        userPath,
        `Cannot connect to ${this.target.host}: no answer within ${this.#options.connectTimeoutS} s (ConnectTimeout)`,
      ),
      { unreachable: true },
    );
  }

  /** `message`, and when the user has a ControlPath, that no master answered on it. */
  #noUserMaster(userPath: string | null, message: string): string {
    if (userPath === null) return message;
    const port = this.target.port ? `-p ${this.target.port} ` : "";
    return `${message} (no master connection answers on your ControlPath "${userPath}": on a site that asks for MFA, open one first with "ssh ${port}${this.destination} true")`;
  }

  /**
   * Runs `command` (a shell command line) on the host; `stdin` is written and
   * closed. Resolves when the command ends.
   */
  async exec(
    command: string,
    stdin?: string | Uint8Array,
    options: { timeoutMs?: number } = {},
  ): Promise<SshResult> {
    await this.open();
    const timeoutMs = options.timeoutMs ?? 0;
    const child = new Deno.Command("ssh", {
      args: [...this.#baseArgs(), this.destination, command],
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      ...(timeoutMs > 0 ? { signal: AbortSignal.timeout(timeoutMs) } : {}),
    }).spawn();
    if (stdin !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin);
      await writer.close();
    }
    const out = await child.output();
    if (out.signal !== null && timeoutMs > 0) {
      // The master connection still looks open but the host does not answer
      // (a cut link): drop it so the next use connects afresh.
      await this.close();
      throw new SshError(`No answer from ${this.target.host} within ${timeoutMs / 1000} s`, {
        unreachable: true,
      });
    }
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  }

  /** Starts `command` on the host and hands back the process for streaming. */
  async spawn(command: string): Promise<Deno.ChildProcess> {
    await this.open();
    return new Deno.Command("ssh", {
      args: [...this.#baseArgs(), this.destination, command],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  }

  /** The arguments of `ssh` that run `command` on the host over the master connection. */
  async commandArgs(command: string): Promise<string[]> {
    await this.open();
    return [...this.#baseArgs(), this.destination, command];
  }

  /**
   * Forwards a new port on the host's loopback to `localPort` here (`-R`).
   * @returns the port allocated on the host.
   * @throws {SshError} when ssh refuses the forward.
   */
  async forwardRemote(localPort: number): Promise<number> {
    await this.open();
    // Port 0 also names the allocated forward to `-O cancel`.
    const forward = ["-R", `0:127.0.0.1:${localPort}`];
    const out = await this.#control(["-O", "forward", ...forward]);
    const port = Number(out.stdout.trim().split("\n").pop());
    if (out.code !== 0 || !Number.isInteger(port) || port <= 0) {
      throw new SshError(
        `Cannot forward a port from ${this.target.host} back here: ${out.stderr.trim()}`,
      );
    }
    if (this.#borrowed) this.#borrowedForwards.add(forward.join(" "));
    return port;
  }

  /**
   * Forwards a free port on this host's loopback to `remotePort` on the host's
   * loopback (`-L`).
   * @returns the local port.
   * @throws {SshError} when ssh refuses the forward.
   */
  async forwardLocal(remotePort: number): Promise<number> {
    await this.open();
    for (let attempt = 0; attempt < 5; attempt++) {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const local = (listener.addr as Deno.NetAddr).port;
      listener.close();
      const forward = ["-L", `127.0.0.1:${local}:127.0.0.1:${remotePort}`];
      const out = await this.#control(["-O", "forward", ...forward]);
      if (out.code === 0) {
        if (this.#borrowed) this.#borrowedForwards.add(forward.join(" "));
        return local;
      }
    }
    throw new SshError(`Cannot forward a local port to ${this.target.host}:${remotePort}`);
  }

  /** Removes a forward made by {@linkcode forwardLocal}; a master already gone is not an error. */
  async cancelLocal(localPort: number, remotePort: number): Promise<void> {
    if (!this.#master && !this.#borrowed) return;
    // A master already gone took its forwards with it (see above).
    const forward = ["-L", `127.0.0.1:${localPort}:127.0.0.1:${remotePort}`];
    this.#borrowedForwards.delete(forward.join(" "));
    await this.#control(["-O", "cancel", ...forward]).catch(() => {});
  }

  /**
   * Closes the master connection (and with it every forward); idempotent.
   * A master the user opened stays open: only our forwards on it are cancelled.
   */
  async close(): Promise<void> {
    const master = this.#master;
    const borrowed = this.#borrowed ? [...this.#borrowedForwards].map((f) => f.split(" ")) : [];
    this.#master = null;
    this.#opening = null;
    this.#borrowed = false;
    this.#borrowedForwards.clear();
    await Promise.all(
      borrowed.map((forward) => this.#control(["-O", "cancel", ...forward], true).catch(() => {})),
    );
    // Masters that dead processes of this owner left (orphanMasters) end too.
    await endOrphanMasters(this.#orphans.splice(0));
    if (!master) return;
    // Polite first; the master is killed below whether or not it listened.
    await this.#control(["-O", "exit"], false).catch(() => {});
    try {
      master.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await master.status;
  }

  async #check(): Promise<boolean> {
    const out = await this.#control(["-O", "check"]);
    return out.code === 0;
  }

  /** Sends a control request to the master: the user's when `borrowed`, else ours. */
  async #control(
    args: string[],
    borrowed = this.#borrowed,
    path = this.#controlPath,
  ): Promise<SshResult> {
    const out = await new Deno.Command("ssh", {
      args: [...this.#baseArgs(false, borrowed, path), ...args, this.destination],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      // A forward needs the host's answer; a cut link must not hang us.
      signal: AbortSignal.timeout((this.#options.connectTimeoutS + 5) * 1000),
    }).output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  }

  /**
   * Our options, which beat the user's configuration. On a borrowed master
   * their ControlPath stays in force. A command never becomes a master itself
   * (as `ControlMaster auto` would make it): one nobody stops.
   */
  #baseArgs(master = false, borrowed = this.#borrowed, path = this.#controlPath): string[] {
    const args = [
      ...(borrowed ? [] : ["-o", `ControlPath=${path}`]),
      "-o",
      `ControlMaster=${master ? "yes" : "no"}`,
      "-o",
      "BatchMode=yes",
      "-o",
      `ConnectTimeout=${this.#options.connectTimeoutS}`,
      "-o",
      "ServerAliveInterval=15",
      "-o",
      "ServerAliveCountMax=3",
      "-o",
      "ExitOnForwardFailure=yes",
    ];
    if (this.target.port) args.push("-p", String(this.target.port));
    return args;
  }
}

/** One word for a POSIX shell, quoted so nothing in it is expanded. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

function shortHash(text: string): string {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  return text;
}
