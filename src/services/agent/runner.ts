/**
 * Runs one task as a child process: no shell, its own session and process
 * group (through the agent's session helper or `setsid(1)`, see
 * `_session_command.ts`), so a cancel, a timeout or the end of the task
 * reaches every process it started.
 * @module
 */
import { type SessionCommand, sessionCommand } from "./_session_command.ts";
import { Tail } from "./_tail.ts";
import type { OutputStream } from "./sandbox.ts";
import { TAIL_BYTES, type Task } from "./task.ts";
import { clearTimeout, setTimeout } from "../../base/timers.ts";

/** Options of {@linkcode runTask}. */
export interface RunOptions {
  /** Time between SIGTERM and SIGKILL on cancel or timeout, ms. Default 5000. */
  graceMs?: number;
  /** Bytes of output kept. Default {@linkcode TAIL_BYTES}. */
  tailBytes?: number;
  /**
   * The environment the task's `env` is laid over. Default: the agent's own,
   * without its `FABRIC_*` variables.
   */
  baseEnv?: Record<string, string>;
  /**
   * Where its output goes besides the tail (its files in the task's
   * directory, {@linkcode TaskOutput}), and that directory, the task's
   * working directory unless it names one. Default: the tail only, in the
   * agent's working directory.
   */
  output?: TaskOutputSink;
  /**
   * The path of a session helper that works on this host (installed by the
   * agent, `_session_helper.ts`). Default: `setsid(1)`.
   */
  sessionHelper?: string;
}

/** Takes a task's output as it arrives; {@linkcode TaskOutput} is one. */
export interface TaskOutputSink {
  /** The task's directory. */
  readonly dir: string;
  /** Stores `chunk` of `stream`; never rejects. */
  write(stream: OutputStream, chunk: Uint8Array): Promise<void>;
}

/** How a task's process ended. */
export interface RunResult {
  /** Exit code; 128 + N when killed by signal N; null when it never started. */
  exitCode: number | null;
  /** The signal that ended it, if any. */
  signal: Deno.Signal | null;
  /** The last bytes of stdout and stderr, interleaved as they arrived. */
  tail: string;
  /** Whether {@linkcode TaskRun.cancel} was called before it ended. */
  canceled: boolean;
  /** Whether it was ended because it ran longer than `timeoutMs`. */
  timedOut: boolean;
  /** Why it could not start (missing executable, bad directory). */
  error?: string;
}

/** A task's process while it runs. */
export interface TaskRun {
  /** The process ID (and process group ID); 0 when it never started. */
  readonly pid: number;
  /** Resolves once the process and its whole group are gone; never rejects. */
  readonly done: Promise<RunResult>;
  /**
   * SIGTERM to the group, SIGKILL after the grace period (or `graceMs`: a
   * second, more urgent cancel shortens a running grace, never lengthens it);
   * idempotent.
   */
  cancel(graceMs?: number): void;
}

/** How long output is still read after the task's group was killed, ms. */
const DRAIN_MS = 1000;

/**
 * Starts `task`'s executable with its arguments, environment and directory;
 * stdin is empty. When the main process ends, whatever is left of its
 * process group is killed, so the task leaves nothing behind (a process that
 * moved to a new session with `setsid` escapes; see docs/services.md).
 */
export function runTask(task: Task, options: RunOptions = {}): TaskRun {
  const graceMs = options.graceMs ?? 5000;
  const tail = new Tail(options.tailBytes ?? TAIL_BYTES);
  const env = { ...(options.baseEnv ?? agentEnv()), ...task.env };
  let child: Deno.ChildProcess;
  try {
    const cwd = task.cwd ?? options.output?.dir;
    child = spawnTask(cwd === undefined ? task : { ...task, cwd }, env, options.sessionHelper);
  } catch (error) {
    const result: RunResult = {
      exitCode: null,
      signal: null,
      tail: "",
      canceled: false,
      timedOut: false,
      error: `Cannot start "${task.executable}": ${(error as Error).message}`,
    };
    return { pid: 0, done: Promise.resolve(result), cancel: () => {} };
  }
  return superviseTask(child, task, {
    graceMs,
    tail,
    ...(options.output ? { output: options.output } : {}),
  });
}

/**
 * Spawns `task` in a session of its own with exactly `env`, its output piped,
 * through `helper` when given. A helper that is gone or cannot be run any
 * more (its directory removed or remounted) leaves the start to `setsid(1)`.
 * @throws {Error} when the executable cannot be found or started.
 */
function spawnTask(task: Task, env: Record<string, string>, helper?: string): Deno.ChildProcess {
  try {
    return spawnSession(task, env, sessionCommand(task, env.PATH, helper));
  } catch (error) {
    const helperFailed = error instanceof Deno.errors.NotFound ||
      error instanceof Deno.errors.PermissionDenied;
    if (helper === undefined || !helperFailed) throw error;
    return spawnSession(task, env, sessionCommand(task, env.PATH));
  }
}

function spawnSession(
  task: Task,
  env: Record<string, string>,
  session: SessionCommand,
): Deno.ChildProcess {
  return new Deno.Command(session.command, {
    args: session.args,
    env,
    clearEnv: true,
    ...(task.cwd === undefined ? {} : { cwd: task.cwd }),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: session.detached,
  }).spawn();
}

/**
 * Waits for the spawned `child` of `task`: collects its output into `tail`,
 * ends its group on cancel or timeout (SIGTERM, SIGKILL after `graceMs`) and,
 * once it exited, kills what is left of the group.
 */
function superviseTask(
  child: Deno.ChildProcess,
  task: Task,
  options: { graceMs: number; tail: Tail; output?: TaskOutputSink },
): TaskRun {
  const { graceMs, tail, output } = options;
  const pid = child.pid;
  let canceled = false;
  let timedOut = false;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  let killAt = Infinity;
  let exited = false;
  // Until setsid(1) has made the group, only the process itself can be
  // signalled; it is not reaped before `exited`, so its PID is still its own.
  const signalTask = (signal: Deno.Signal): void => {
    if (!signalGroup(pid, signal) && !exited) signalProcess(pid, signal);
  };
  const terminate = (grace = graceMs): void => {
    if (exited || Date.now() + grace >= killAt) return;
    if (killTimer === undefined) signalTask("SIGTERM");
    clearTimeout(killTimer);
    killAt = Date.now() + grace;
    killTimer = setTimeout(() => signalTask("SIGKILL"), grace);
  };
  const write = async (chunk: Uint8Array, stream: OutputStream): Promise<void> => {
    tail.write(chunk);
    await output?.write(stream, chunk);
  };
  const timeout = task.timeoutMs === undefined ? undefined : setTimeout(() => {
    timedOut = true;
    terminate();
  }, task.timeoutMs);
  const readers = [
    drain(child.stdout, (chunk) => write(chunk, "stdout")),
    drain(child.stderr, (chunk) => write(chunk, "stderr")),
  ];
  const done = (async (): Promise<RunResult> => {
    const status = await child.status;
    exited = true;
    clearTimeout(timeout);
    clearTimeout(killTimer);
    // Children the task left running in its group would outlive it, holding its pipes.
    signalGroup(pid, "SIGKILL");
    // Usually both pipes reached their end with the exit: no timer is set then.
    if (readers.some((reader) => !reader.ended)) {
      const drained = Promise.all(readers.map((r) => r.done));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<void>((resolve) => timer = setTimeout(resolve, DRAIN_MS));
      await Promise.race([drained, late]);
      clearTimeout(timer);
      for (const reader of readers) reader.stop();
    }
    return {
      exitCode: status.code,
      signal: status.signal,
      tail: tail.text(),
      canceled,
      timedOut,
    };
  })();
  return {
    pid,
    done,
    cancel: (grace?: number) => {
      if (exited) return;
      canceled = true;
      terminate(grace ?? graceMs);
    },
  };
}

/** The agent's environment without its own `FABRIC_*` settings. */
export function agentEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([name]) => !name.startsWith("FABRIC_")),
  );
}

/** Signals process group `pid`; false when there is no such group (gone, or not made yet). */
function signalGroup(pid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

function signalProcess(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

function drain(
  stream: ReadableStream<Uint8Array>,
  take: (chunk: Uint8Array) => Promise<void>,
): { done: Promise<void>; readonly ended: boolean; stop(): void } {
  const reader = stream.getReader();
  let ended = false;
  const done = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        await take(value);
      }
    } catch {
      // Cancelled by stop(), or the pipe broke: the tail is what arrived.
    } finally {
      ended = true;
    }
  })();
  return {
    done,
    get ended() {
      return ended;
    },
    stop: () => void reader.cancel().catch(() => {}),
  };
}
