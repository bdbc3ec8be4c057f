/**
 * One OpenSSH connection to a host, shared by every command and port forward
 * to it (ControlMaster). The system's `ssh` is used on purpose: the user's
 * `~/.ssh/config`, ProxyJump, agents and a site's MFA keep working.
 * @module
 */
import { join } from "../base/paths.ts";
import { sleep } from "../config/retry.ts";

/** Where and how to connect: `ssh://[user@]host[:port]`. */
export interface SshTarget {
  host: string;
  user?: string;
  port?: number;
}

/** A failure of ssh itself (not of the remote command), with advice. */
export class SshError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SshError";
  }
}

/** Options of {@linkcode SshConnection}. */
export interface SshConnectionOptions {
  /** Directory for the control socket (kept short: sockets have a path limit). */
  controlDir: string;
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
  /** The user's own ControlPath from ~/.ssh/config, if any: then we ride on their master. */
  #userControl = false;
  #generation = 0;

  /** A connection to `target`, opened on first use. */
  constructor(target: SshTarget, options: SshConnectionOptions) {
    this.target = target;
    this.#options = { connectTimeoutS: 10, ...options };
    const tag = `${target.user ?? ""}@${target.host}:${target.port ?? 22}`;
    this.#controlPath = join(options.controlDir, `cm-${shortHash(tag)}`);
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
    // A ControlPath in the user's configuration wins: a master they opened
    // (after a site's MFA prompt) carries our commands too.
    this.#userControl = await userControlPath(this.destination, this.target.port);
    if (this.#userControl && await this.#check()) return;
    // A stale socket of an earlier master, if any; usually there is none.
    if (!this.#userControl) await Deno.remove(this.#controlPath).catch(() => {});
    const master = new Deno.Command("ssh", {
      args: [...this.#baseArgs(), "-M", "-N", "-o", "ControlPersist=no", this.destination],
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
        throw new SshError(explainSshFailure(this.target.host, await errors));
      }
      if (await this.#check()) return;
      await sleep(50);
    }
    try {
      master.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    throw new SshError(
      `Cannot connect to ${this.target.host}: no answer within ${this.#options.connectTimeoutS} s (ConnectTimeout)`,
    );
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
      throw new SshError(`No answer from ${this.target.host} within ${timeoutMs / 1000} s`);
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
    const out = await this.#control(["-O", "forward", "-R", `0:127.0.0.1:${localPort}`]);
    const port = Number(out.stdout.trim().split("\n").pop());
    if (out.code !== 0 || !Number.isInteger(port) || port <= 0) {
      throw new SshError(
        `Cannot forward a port from ${this.target.host} back here: ${out.stderr.trim()}`,
      );
    }
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
      const out = await this.#control([
        "-O",
        "forward",
        "-L",
        `127.0.0.1:${local}:127.0.0.1:${remotePort}`,
      ]);
      if (out.code === 0) return local;
    }
    throw new SshError(`Cannot forward a local port to ${this.target.host}:${remotePort}`);
  }

  /** Removes a forward made by {@linkcode forwardLocal}; a master already gone is not an error. */
  async cancelLocal(localPort: number, remotePort: number): Promise<void> {
    if (!this.#master && !this.#userControl) return;
    // A master already gone took its forwards with it (see above).
    await this.#control(["-O", "cancel", "-L", `127.0.0.1:${localPort}:127.0.0.1:${remotePort}`])
      .catch(() => {});
  }

  /** Closes the master connection (and with it every forward); idempotent. */
  async close(): Promise<void> {
    const master = this.#master;
    this.#master = null;
    this.#opening = null;
    if (!master) return;
    // Polite first; the master is killed below whether or not it listened.
    await this.#control(["-O", "exit"]).catch(() => {});
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

  async #control(args: string[]): Promise<SshResult> {
    const out = await new Deno.Command("ssh", {
      args: [...this.#baseArgs(), ...args, this.destination],
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

  #baseArgs(): string[] {
    const args = [
      "-o",
      `ControlPath=${this.#controlPath}`,
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

/** Turns ssh's stderr into a message that says what to do. */
export function explainSshFailure(host: string, stderr: string): string {
  const text = stderr.trim();
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/i.test(text)) {
    return `Host key of ${host} does not match known_hosts: if the host was reinstalled, check its new key and remove the old one with "ssh-keygen -R ${host}"`;
  }
  if (/Permission denied/i.test(text)) {
    return `${host} refused our ssh login: load a key into ssh-agent or set IdentityFile in ~/.ssh/config (BatchMode: no passwords)`;
  }
  if (/timed out|Connection timed out/i.test(text)) {
    return `Cannot connect to ${host}: connection timed out (ConnectTimeout)`;
  }
  if (/Could not resolve hostname/i.test(text)) {
    return `Cannot resolve ${host}: check the name or add a Host entry to ~/.ssh/config`;
  }
  return `Cannot connect to ${host}: ${text.split("\n").filter(Boolean).pop() ?? "ssh failed"}`;
}

async function userControlPath(destination: string, port: number | undefined): Promise<boolean> {
  try {
    const out = await new Deno.Command("ssh", {
      args: ["-G", ...(port ? ["-p", String(port)] : []), destination],
      stdout: "piped",
      stderr: "null",
    }).output();
    const line = new TextDecoder().decode(out.stdout).split("\n").find((l) =>
      l.startsWith("controlpath ")
    );
    return out.success && line !== undefined && line.trim() !== "controlpath none";
  } catch {
    return false;
  }
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
