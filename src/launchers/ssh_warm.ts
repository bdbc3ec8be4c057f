/**
 * A warm process on an `ssh://` host (docs/protocol.md 4.11): started ahead of
 * its spawn by the spawner's warm pool over the spawner's connection to that
 * host, detached by setsid, its stdin the standard input of its own SSH
 * channel. The hand-over line goes down that channel, which is then closed;
 * the channel ending before (the spawner, or its connection, died) is the end
 * of input that makes the warm process exit by itself.
 * @module
 */
import { type LaunchedProcess, type LaunchSpec, warmHandOverLine } from "./launcher.ts";
import type { WarmProcess } from "./launcher.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";

/** A process the SSH start script reported: its channel, PID and exit. */
export interface Started {
  child: Deno.ChildProcess;
  pid: number;
  /** Its exit code, or -1 when the channel ended without the script's report. */
  exited: Promise<number>;
}

/** What the launcher does for a warm process. */
export interface WarmHooks {
  /** After the hand-over line went out: the service it now is (its log renamed to ID.log). */
  handedOver(spec: LaunchSpec): LaunchedProcess;
  /** Sends a signal to the process on the host. */
  signal(signal: Deno.Signal): void;
  /** It is no longer the launcher's to stop (handed over, stopped or ended). */
  release(): void;
}

/** How long a warm process gets to exit after its input closes, then SIGTERM, then SIGKILL, ms. */
const TERM_AFTER_MS = 2000;
const KILL_AFTER_MS = 5000;

/** See the module doc. */
export class SshWarmProcess implements WarmProcess {
  readonly role: string;
  readonly pid: number;
  readonly exited: Promise<number>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #hooks: WarmHooks;
  #used = false;
  #ended = false;

  /** A warm process of `role` that `started` reported. */
  constructor(role: string, started: Started, hooks: WarmHooks) {
    this.role = role;
    this.pid = started.pid;
    this.exited = started.exited;
    this.#writer = started.child.stdin.getWriter();
    this.#hooks = hooks;
    // A warm process that ends by itself is no longer the launcher's to stop.
    void this.exited.then(() => {
      this.#ended = true;
      hooks.release();
    });
  }

  async handOver(spec: LaunchSpec): Promise<LaunchedProcess> {
    if (this.#used) throw new Error(`Warm process ${this.pid} was already handed over or stopped`);
    // Gone already (killed, or its channel ended): the pool starts the service cold instead.
    if (this.#ended) throw new Error(`Warm process ${this.pid} has ended`);
    const line = warmHandOverLine(this.role, spec);
    this.#used = true;
    this.#hooks.release();
    // A process that died meanwhile closed its input; its exit is reported through `exited`.
    await this.#writer.write(new TextEncoder().encode(`${line}\n`)).catch(() => {});
    await this.#writer.close().catch(() => {});
    return this.#hooks.handedOver(spec);
  }

  async stop(): Promise<void> {
    if (this.#used) return;
    this.#used = true;
    this.#hooks.release();
    // End of input is the warm process's signal to exit 0; signals if it does not.
    await this.#writer.close().catch(() => {});
    const term = setTimeout(() => this.#hooks.signal("SIGTERM"), TERM_AFTER_MS);
    const kill = setTimeout(() => this.#hooks.signal("SIGKILL"), KILL_AFTER_MS);
    let bound: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.exited,
      new Promise((resolve) => bound = setTimeout(resolve, KILL_AFTER_MS + 1000)),
    ]);
    clearTimeout(term);
    clearTimeout(kill);
    clearTimeout(bound);
  }
}
