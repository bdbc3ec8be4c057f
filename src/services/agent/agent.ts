/**
 * The agent's loop: takes tasks from a queue while it has free cores or room
 * in its prefetch window, runs each in its core slots (in its own directory
 * when it has a {@linkcode TaskSandbox}), publishes every state change on
 * `tasks.<id>` and reports it to the queue's task history (`_task_reporter.ts`),
 * and acknowledges a task's message only once the task reached a final state,
 * so a task on an agent that dies is delivered again (at least once). A
 * task's cores are free again once its process is gone, before its final
 * report and ack are answered.
 * @module
 */
import { log } from "../../config/logging.ts";
import { sleep } from "../../config/retry.ts";
import { QUEUE_LIMITS, type QueueMessage, type TaskReport } from "../../types/queue_wire.ts";
import { agentEnv, type RunOptions, runTask, type TaskRun } from "./runner.ts";
import type { TaskOutput, TaskSandbox } from "./sandbox.ts";
import { type Ending, endingOf, TaskReporter } from "./_task_reporter.ts";
import { CoreSlots } from "./slots.ts";
import { parseTask, type Task } from "./task.ts";

/** Where the agent takes tasks from; {@linkcode QueueClient} is one. */
export interface TaskQueue {
  get(
    name: string,
    options: { max: number; waitMs: number; visibilityMs: number; signal?: AbortSignal },
  ): Promise<QueueMessage[]>;
  ack(name: string, id: string): Promise<void>;
  nack(name: string, id: string): Promise<void>;
  /** Reports a task's state to the queue's task history. Default: no reports. */
  report?(name: string, id: string, report: TaskReport): Promise<void>;
  /** A final report, then the ack of `messageId`, as `QueueSession.finish()`. Default: one by one. */
  finish?(name: string, id: string, report: TaskReport, messageId: string): Promise<boolean>;
}

/**
 * Where the agent publishes task events. The agent does not wait for a
 * publish: a sink takes each event in call order and sends it when it can
 * (the agent's own sink buffers while its pub/sub is away), so work never
 * waits on events; a rejected publish is logged.
 */
export interface TaskEventSink {
  publish(topic: string, message: unknown): Promise<unknown>;
}

/** Options of {@linkcode Agent}. */
export interface AgentOptions {
  /** The agent's service ID, sent in every event. */
  agentId: string;
  /** Cores to run tasks on. */
  cores: number;
  /** The queue to take tasks from. Default "tasks". */
  queueName?: string;
  /** Visibility timeout of a taken task, ms; must outlast its wait and run. Default 60000. */
  visibilityMs?: number;
  /**
   * Tasks taken beyond the free cores, to wait on the agent so that a freed
   * core starts the next task without a round trip to the queue. 0 takes a
   * task only while a core is free and no taken task waits. Default 0.
   */
  prefetch?: number;
  /** Longest long-poll of one get, ms. Default 20000. */
  pollWaitMs?: number;
  /** Time between SIGTERM and SIGKILL when a task is canceled, ms. Default 5000. */
  graceMs?: number;
  /** Wait after a failed get, ack or nack before trying again, ms. Default 1000. */
  retryMs?: number;
  /** The environment tasks' `env` is laid over. Default: the agent's, without `FABRIC_*`. */
  baseEnv?: Record<string, string>;
  /** Called when a task starts, with the seconds since the agent took it (metrics). */
  onTaskStart?: (waitedSeconds: number) => void;
  /** Where each task runs and leaves its output. Default: none (the agent's directory, tail only). */
  sandbox?: TaskSandbox;
  /** The host name reported to the queue's history. Default `Deno.hostname()`. */
  host?: string;
  /** The session helper that starts tasks (`runner.ts`). Default: `setsid(1)`. */
  sessionHelper?: string;
}

/** Options of {@linkcode Agent.stop}. */
export interface AgentStopOptions {
  /** SIGTERM to SIGKILL for this stop, ms. Default: the agent's. */
  graceMs?: number;
}

/** What `GET /v1/agent` answers. */
export interface AgentStatus {
  /** Cores in all. */
  slots: number;
  /** Cores not held by a task. */
  free: number;
  /** IDs of the tasks whose process runs. */
  running: string[];
  /** IDs of the tasks taken and waiting for cores. */
  queued: string[];
}

interface Entry {
  task: Task;
  message: QueueMessage;
  abort: AbortController;
  run: TaskRun | null;
  /** Set by stop(): the task goes back to the queue instead of ending. */
  requeue: boolean;
  /** Its process is gone and its cores given back; its final report and ack are under way. */
  ending: boolean;
}

/** Runs tasks from one queue in core slots. */
export class Agent {
  #queue: TaskQueue;
  #reporter: TaskReporter;
  #sandbox: TaskSandbox | undefined;
  #id: string;
  #slots: CoreSlots;
  #queueName: string;
  #visibilityMs: number;
  #prefetch: number;
  #pollWaitMs: number;
  #retryMs: number;
  /** What every task's run gets: its grace, the environment under its own, the session helper. */
  #runOptions: RunOptions;
  #entries = new Map<string, Entry>();
  #handling = new Set<Promise<void>>();
  #stopping = new AbortController();
  #loop: Promise<void> | null = null;
  #stopped: Promise<void> | null = null;
  #logger = log("agent");
  #onTaskStart: ((waitedSeconds: number) => void) | undefined;
  /** Tasks ended on this agent by final state, since it started. */
  get tally(): TaskReporter["tally"] {
    return this.#reporter.tally;
  }

  /**
   * An agent taking tasks from `queue` and publishing to `events`; call
   * {@linkcode Agent.start} to begin.
   * @throws {RangeError} when `cores` is not a positive whole number, or
   * `prefetch` not a whole number from 0 to 100.
   */
  constructor(queue: TaskQueue, events: TaskEventSink, options: AgentOptions) {
    this.#queue = queue;
    this.#id = options.agentId;
    this.#sandbox = options.sandbox;
    this.#slots = new CoreSlots(options.cores);
    this.#queueName = options.queueName ?? "tasks";
    this.#visibilityMs = options.visibilityMs ?? 60_000;
    this.#prefetch = options.prefetch ?? 0;
    if (
      !Number.isSafeInteger(this.#prefetch) || this.#prefetch < 0 ||
      this.#prefetch > QUEUE_LIMITS.maxBatch
    ) {
      throw new RangeError(
        `Invalid prefetch ${this.#prefetch}: give a whole number from 0 to ${QUEUE_LIMITS.maxBatch}`,
      );
    }
    this.#pollWaitMs = options.pollWaitMs ?? 20_000;
    this.#retryMs = options.retryMs ?? 1000;
    this.#runOptions = {
      graceMs: options.graceMs ?? 5000,
      // Read once: the agent's own environment does not change while it runs.
      baseEnv: options.baseEnv ?? agentEnv(),
      ...(options.sessionHelper === undefined ? {} : { sessionHelper: options.sessionHelper }),
    };
    this.#onTaskStart = options.onTaskStart;
    this.#reporter = new TaskReporter(events, queue, {
      agentId: this.#id,
      host: options.host ?? Deno.hostname(),
      queueName: this.#queueName,
      retryMs: this.#retryMs,
      stopping: this.#stopping.signal,
    });
  }

  /** Starts taking tasks; calling it again does nothing. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Cores, free cores, and the tasks on this agent. */
  status(): AgentStatus {
    const running: string[] = [];
    const queued: string[] = [];
    for (const [id, entry] of this.#entries) {
      if (!entry.ending) (entry.run ? running : queued).push(id);
    }
    return { slots: this.#slots.total, free: this.#slots.free, running, queued };
  }

  /**
   * Cancels task `id` if it is on this agent, waiting or running: it ends
   * CANCELED and its message is acknowledged.
   * @returns false when no such task is on this agent.
   */
  cancel(id: string): boolean {
    const entry = this.#entries.get(id);
    // A task whose process is gone has ended: only its report and ack are left.
    if (!entry || entry.ending || this.#stopping.signal.aborted) return false;
    entry.abort.abort();
    entry.run?.cancel();
    return true;
  }

  /**
   * Stops taking tasks, cancels every task on the agent (SIGTERM to each
   * task's process group, then SIGKILL after `options.graceMs`, default the
   * agent's grace period), waits until their processes are gone and gives
   * their messages back to the queue (one attempt each: a message not given
   * back returns after its visibility timeout). Calling it again only
   * shortens the grace.
   */
  stop(options: AgentStopOptions = {}): Promise<void> {
    this.#stopping.abort();
    for (const entry of this.#entries.values()) {
      entry.requeue = true;
      entry.abort.abort();
      entry.run?.cancel(options.graceMs);
    }
    this.#stopped ??= (async () => {
      await this.#loop;
      while (this.#handling.size > 0) await Promise.all(this.#handling);
    })();
    return this.#stopped;
  }

  async #run(): Promise<void> {
    const signal = this.#stopping.signal;
    while (!signal.aborted) {
      await this.#roomForMore(signal);
      if (signal.aborted) break;
      let messages: QueueMessage[];
      try {
        messages = await this.#queue.get(this.#queueName, {
          max: Math.min(this.#wanted(), QUEUE_LIMITS.maxBatch),
          waitMs: this.#pollWaitMs,
          visibilityMs: this.#visibilityMs,
          signal,
        });
      } catch (error) {
        if (signal.aborted) break;
        this.#logger.warn("Cannot take tasks from queue {queue}: {error}", {
          queue: this.#queueName,
          error: String(error),
        });
        await sleep(this.#retryMs, signal);
        continue;
      }
      for (const message of messages) {
        if (signal.aborted) {
          await this.#reporter.settle(message, "nack");
          continue;
        }
        const handling = this.#handle(message).catch((error) => {
          this.#logger.error("Task of message {id} broke the agent's handling: {error}", {
            id: message.id,
            error: String(error),
          });
        });
        this.#handling.add(handling);
        handling.finally(() => this.#handling.delete(handling));
      }
    }
  }

  /**
   * Tasks to take now: the free cores (unless a taken task waits for cores,
   * which would start first) plus the prefetch window, less the taken tasks
   * that wait for cores already.
   */
  #wanted(): number {
    const waiting = this.#slots.waiting;
    return (waiting === 0 ? this.#slots.free : 0) + this.#prefetch - waiting;
  }

  /** Resolves when the agent wants more tasks (see `#wanted`), or on stop. */
  #roomForMore(signal: AbortSignal): Promise<void> {
    const room = (): boolean => this.#wanted() > 0;
    if (room() || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        off();
        signal.removeEventListener("abort", done);
        resolve();
      };
      const off = this.#slots.onChange(() => {
        if (room()) done();
      });
      signal.addEventListener("abort", done, { once: true });
    });
  }

  async #handle(message: QueueMessage): Promise<void> {
    const parsed = parseTask(message.payload, message.id);
    if (!parsed.ok) {
      this.#logger.warn("Task {id} is invalid: {reason}", { id: parsed.id, reason: parsed.reason });
      return await this.#reporter.end(parsed.id, message, {
        state: "FAILED",
        fields: { reason: parsed.reason },
        how: "ack",
      });
    }
    const task = parsed.task;
    if (this.#entries.has(task.id)) {
      // A redelivery while the first delivery still runs here: the running one's
      // ack deletes the message, so this copy is left alone.
      this.#logger.warn("Task {id} was delivered again while it runs here; ignoring the copy", {
        id: task.id,
      });
      return;
    }
    const takenAt = performance.now();
    const entry: Entry = {
      task,
      message,
      abort: new AbortController(),
      run: null,
      requeue: false,
      ending: false,
    };
    this.#entries.set(task.id, entry);
    try {
      // The cores are given back as soon as the process is gone: its final
      // report and ack travel while the next task already runs in them.
      const ending = await this.#occupy(entry, takenAt);
      entry.ending = true;
      await this.#reporter.end(task.id, message, ending);
    } finally {
      this.#entries.delete(task.id);
    }
  }

  /** Waits for the cores of `entry`, runs its task in them and answers how it ended. */
  async #occupy(entry: Entry, takenAt: number): Promise<Ending> {
    // Acquire before the first await, so the loop sees the cores taken.
    const acquiring = this.#slots.acquire(entry.task.cores, { signal: entry.abort.signal });
    // Its rejection is handled where it is awaited below; this only keeps it
    // from counting as unhandled while the QUEUED event is published.
    acquiring.catch(() => {});
    await this.#reporter.state(entry.task.id, "QUEUED");
    let release: () => void;
    try {
      release = await acquiring;
    } catch (error) {
      if (entry.abort.signal.aborted) return this.#aborted(entry, "");
      return { state: "FAILED", fields: { reason: (error as Error).message }, how: "ack" };
    }
    try {
      if (entry.abort.signal.aborted) return this.#aborted(entry, "");
      this.#onTaskStart?.((performance.now() - takenAt) / 1000);
      return await this.#execute(entry);
    } finally {
      release();
    }
  }

  /** Runs the task of `entry`, which holds its cores, in its directory, until its process is gone. */
  async #execute(entry: Entry): Promise<Ending> {
    const { task } = entry;
    let output: TaskOutput | undefined;
    try {
      output = await this.#sandbox?.open(task.id);
    } catch (error) {
      const reason = `Cannot make the task's directory: ${(error as Error).message}`;
      return { state: "FAILED", fields: { reason }, how: "ack" };
    }
    try {
      await this.#reporter.state(task.id, "RUNNING", output ? { output: output.dir } : {});
      if (entry.abort.signal.aborted) return this.#aborted(entry, "");
      entry.run = runTask(task, { ...this.#runOptions, ...(output ? { output } : {}) });
      const result = await entry.run.done;
      if (entry.requeue) return this.#aborted(entry, result.tail);
      return endingOf(result, task);
    } finally {
      output?.close();
    }
  }

  /** How a task that was canceled, or is given back because the agent stops, ends. */
  #aborted(entry: Entry, tail: string): Ending {
    const withTail = tail ? { tail } : {};
    if (entry.requeue) {
      const reason = `Agent "${this.#id}" is stopping: the task goes back to the queue`;
      return { state: "QUEUED", fields: { ...withTail, reason }, how: "nack" };
    }
    const reason = "Canceled on request";
    return { state: "CANCELED", fields: { ...withTail, reason }, how: "ack" };
  }
}
