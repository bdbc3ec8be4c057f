/**
 * What the agent tells others of a task: each state change two ways, an
 * event on the pub/sub (`tasks.<id>`, at most once, never waited for: issue
 * 18) and a report to the queue's task history
 * (a `report` frame on the queue socket, in order per task); then the ack or
 * nack of its message. A final report is waited for (a few attempts), so the
 * history holds the outcome before the message is acknowledged: where the
 * queue can, the final report carries the ack (one frame, one transaction,
 * the report first); a RUNNING
 * report never holds a task up, and is held back briefly so that a short
 * task's final report stands for both. QUEUED is only published: the queue
 * records by itself when it hands a task out or takes it back.
 * @module
 */
import { log } from "../../config/logging.ts";
import { retry } from "../../config/retry.ts";
import type { QueueMessage, TaskReport } from "../../types/queue_wire.ts";
import type { TaskEventSink, TaskQueue } from "./agent.ts";
import type { RunResult } from "./runner.ts";
import { type Task, type TaskEvent, type TaskState, taskTopic } from "./task.ts";
import { clearTimeout, setTimeout } from "../../base/timers.ts";

/** Options of {@linkcode TaskReporter}. */
export interface TaskReporterOptions {
  /** The agent's service ID. */
  agentId: string;
  /** The agent's host name, for the history. */
  host: string;
  /** The queue the tasks come from. */
  queueName: string;
  /** Wait between two attempts of a report, ms. */
  retryMs: number;
  /** Aborted when the agent stops: a failed report is not tried again. */
  stopping: AbortSignal;
}

/** What a state change may carry besides the state. */
export type StateFields = Pick<TaskEvent, "exitCode" | "tail" | "reason"> & {
  /** The task's directory on this host. */
  output?: string;
};

/** How a task ended on an agent: its last state, and what becomes of its message. */
export interface Ending {
  state: TaskState;
  fields: StateFields;
  how: "ack" | "nack";
}

/**
 * How a task whose process is gone ends: CANCELED on request, FAILED when it
 * could not start, timed out or exited non-zero, else DONE; its message is
 * acknowledged in each case.
 */
export function endingOf(result: RunResult, task: Task): Ending {
  const ran = result.exitCode === null ? {} : { exitCode: result.exitCode };
  const fields = { ...ran, tail: result.tail };
  if (result.canceled) {
    return { state: "CANCELED", fields: { ...fields, reason: "Canceled on request" }, how: "ack" };
  } else if (result.error !== undefined) {
    return { state: "FAILED", fields: { ...fields, reason: result.error }, how: "ack" };
  } else if (result.timedOut) {
    const reason = `Timed out after ${task.timeoutMs} ms`;
    return { state: "FAILED", fields: { ...fields, reason }, how: "ack" };
  }
  return { state: result.exitCode === 0 ? "DONE" : "FAILED", fields, how: "ack" };
}

/** Attempts of one report, ack or nack; then an ack or nack is left to the visibility timeout. */
const ATTEMPTS = 3;

/**
 * How long a RUNNING report waits for the task's final state, ms: a task
 * that ends sooner costs the queue one report (and one transaction), not two.
 */
export const RUNNING_HOLD_MS = 50;

/** Publishes task events and reports them to the queue's task history. */
export class TaskReporter {
  /** Tasks ended by final state, since the agent started. */
  readonly tally = { DONE: 0, FAILED: 0, CANCELED: 0 };
  #events: TaskEventSink;
  #queue: TaskQueue;
  #options: TaskReporterOptions;
  #chains = new Map<string, Promise<void>>();
  /** RUNNING reports held back, by task ID. */
  #held = new Map<string, { report: TaskReport; timer: ReturnType<typeof setTimeout> }>();
  #logger = log("agent");

  /** Events go to `events`, reports to `queue` (when it takes them). */
  constructor(events: TaskEventSink, queue: TaskQueue, options: TaskReporterOptions) {
    this.#events = events;
    this.#queue = queue;
    this.#options = options;
  }

  /**
   * Tells that task `id` is now in `state`. Resolves at once, except for a
   * final state: then once the queue took the report or the attempts ran out
   * (logged; the acknowledgement then marks the task ENDED in the history).
   * A RUNNING report is held back for {@linkcode RUNNING_HOLD_MS}: when the
   * task ends by then, one final report with `startedAt` stands for both.
   */
  state(id: string, state: TaskState, fields: StateFields = {}): Promise<void> {
    const report = this.#record(id, state, fields);
    return report ? this.#enqueue(id, report) : Promise.resolve();
  }

  /** Publishes the event and answers the report to send now, if any (see `state`). */
  #record(id: string, state: TaskState, fields: StateFields): TaskReport | null {
    const at = Date.now();
    const { output, ...eventFields } = fields;
    this.#publish({ id, state, agent: this.#options.agentId, ...eventFields, at });
    if (!this.#queue.report) return null;
    const held = this.#held.get(id);
    if (held) {
      clearTimeout(held.timer);
      this.#held.delete(id);
    }
    // The queue records by itself when it hands a task out or takes it back
    // (QUEUED): only what happens on the agent is reported to its history.
    if (state === "QUEUED") {
      if (held) void this.#enqueue(id, held.report);
      return null;
    }
    const report: TaskReport = {
      state,
      agent: this.#options.agentId,
      host: this.#options.host,
      at,
      ...(fields.exitCode === undefined ? {} : { exitCode: fields.exitCode }),
      ...(fields.reason === undefined ? {} : { reason: fields.reason }),
      ...(output === undefined ? {} : { output }),
    };
    if (state === "RUNNING") {
      const timer = setTimeout(() => {
        this.#held.delete(id);
        void this.#enqueue(id, report);
      }, RUNNING_HOLD_MS);
      this.#held.set(id, { report, timer });
      return null;
    }
    if (!held) return report;
    const dir = output ?? held.report.output;
    return { ...report, ...(dir === undefined ? {} : { output: dir }), startedAt: held.report.at };
  }

  /**
   * Tells how task `id` ended (the final report waited for, so the history
   * has it first), then acknowledges or gives back its `message`; never rejects.
   */
  async end(id: string, message: QueueMessage, ending: Ending): Promise<void> {
    if (ending.how === "ack" && this.#queue.finish) {
      const report = this.#record(id, ending.state, ending.fields);
      if (report) return await this.#enqueue(id, report, message);
    }
    await this.state(id, ending.state, ending.fields);
    await this.settle(message, ending.how);
  }

  /** Acknowledges (the task ended) or gives back (nack) `message`, a few times at most; never rejects. */
  async settle(message: QueueMessage, how: "ack" | "nack"): Promise<void> {
    const { queueName, retryMs, stopping } = this.#options;
    try {
      await retry(() => this.#queue[how](queueName, message.id), {
        attempts: ATTEMPTS,
        firstDelayMs: retryMs,
        factor: 1,
        retryIf: (error) => !stopping.aborted && statusOf(error) !== 404,
      });
    } catch (error) {
      // A message the queue does not hold was acknowledged already (by
      // another run of a copy): trying again cannot help. After the last
      // attempt, the visibility timeout hands the message out again.
      this.#logger.warn("Cannot {how} message {id}: {error}", {
        how,
        id: message.id,
        error: String(error),
      });
    }
  }

  /** Hands the event to the sink without waiting; a failure is logged. */
  #publish(event: TaskEvent): void {
    const { state, id } = event;
    if (state === "DONE" || state === "FAILED" || state === "CANCELED") this.tally[state]++;
    const failed = (error: unknown): void => {
      // Events are at most once, like pub/sub itself; the task goes on.
      this.#logger.warn("Cannot publish {state} of task {id}: {error}", {
        state,
        id,
        error: String(error),
      });
    };
    try {
      this.#events.publish(taskTopic(id), event).catch(failed);
    } catch (error) {
      failed(error);
    }
  }

  /**
   * Sends `report` after the reports of task `id` sent before it, with the
   * ack of `message` when given; never rejects.
   */
  #enqueue(id: string, report: TaskReport, message?: QueueMessage): Promise<void> {
    const sent = (this.#chains.get(id) ?? Promise.resolve()).then(() =>
      message ? this.#finish(id, report, message) : this.#send(id, report)
    );
    this.#chains.set(id, sent);
    void sent.then(() => {
      if (this.#chains.get(id) === sent) this.#chains.delete(id);
    });
    return sent;
  }

  /**
   * Sends a final report that carries the ack of `message`, a few times at
   * most; when it is not taken (no such task, or the queue is away), the
   * message is acknowledged alone. Never rejects.
   */
  async #finish(id: string, report: TaskReport, message: QueueMessage): Promise<void> {
    const { queueName, retryMs, stopping } = this.#options;
    try {
      const acked = await retry(() => this.#queue.finish!(queueName, id, report, message.id), {
        attempts: ATTEMPTS,
        firstDelayMs: retryMs,
        factor: 1,
        retryIf: (error) => !stopping.aborted && statusOf(error) !== 404,
      });
      if (!acked) {
        this.#logger.warn("Cannot ack message {id}: the queue does not hold it", {
          id: message.id,
        });
      }
      return;
    } catch (error) {
      this.#cannotReport(id, report, error);
    }
    await this.settle(message, "ack");
  }

  /** Sends one report, a few times at most; never rejects. */
  async #send(id: string, report: TaskReport): Promise<void> {
    const { queueName, retryMs, stopping } = this.#options;
    try {
      await retry(() => this.#queue.report!(queueName, id, report), {
        attempts: ATTEMPTS,
        firstDelayMs: retryMs,
        factor: 1,
        retryIf: (error) => !stopping.aborted && statusOf(error) !== 404,
      });
    } catch (error) {
      this.#cannotReport(id, report, error);
    }
  }

  #cannotReport(id: string, report: TaskReport, error: unknown): void {
    // 404: the queue keeps no history of this task (not a task put by
    // `fabricd task`, or pruned). Otherwise the queue is away.
    const level = statusOf(error) === 404 ? "debug" : "warn";
    this.#logger[level]("Cannot report {state} of task {id} to the queue: {error}", {
      state: report.state,
      id,
      error: String(error),
    });
  }
}

/** The HTTP status of a failed call, if it has one. */
function statusOf(error: unknown): number | undefined {
  if (typeof error !== "object" || error === null || !("status" in error)) return undefined;
  const status = (error as { status: unknown }).status;
  return typeof status === "number" ? status : undefined;
}
