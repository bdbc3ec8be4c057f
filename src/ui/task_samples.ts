/**
 * The task queue over time for the page of `fabricd ui` (issue 13): every
 * 2 s the UI scrapes the queues' and agents' `/v1/metrics` and keeps one
 * sample (depth, running, done and failed per second) in a ring of the last
 * 150, so the page can draw the last five minutes without a database.
 * @module
 */
import type { FabricKeys } from "../crypto/keys.ts";
import type { ServiceRecord } from "../types/mod.ts";
import { scrapeFabric, type ScrapeResult } from "./scrape.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";

/** Counts read from one or more expositions. */
export interface TaskCounts {
  /** Messages ready to be taken (`fabricd_queue_depth{state="ready"}`). */
  depth: number;
  /** Messages taken and not yet acknowledged. */
  inflight: number;
  /** Busy core slots of the agents (`fabricd_agent_slots{state="busy"}`). */
  busy: number;
  /** Tasks ended DONE, FAILED and CANCELED (`fabricd_agent_tasks_total`). */
  done: number;
  failed: number;
  canceled: number;
}

/** One point of the chart. */
export interface TaskSample {
  /** Milliseconds since the epoch. */
  at: number;
  depth: number;
  inflight: number;
  /** Busy core slots. */
  running: number;
  /** Tasks ended DONE per second since the previous sample. */
  done: number;
  /** Tasks ended FAILED or CANCELED per second since the previous sample. */
  failed: number;
}

/** Options of {@linkcode TaskSampler}. */
export interface TaskSamplerOptions {
  /** Time between samples, ms. Default 2000. */
  intervalMs?: number;
  /** Samples kept, the oldest dropped first. Default 150 (five minutes at 2 s). */
  capacity?: number;
  /** Time for one service's metrics, ms. Default 1500. */
  timeoutMs?: number;
  /**
   * Scrapes the ALIVE queues and agents of `records`. Default: signed
   * requests with {@linkcode scrapeFabric}; tests give canned answers.
   */
  scrape?: (records: ServiceRecord[]) => Promise<ScrapeResult[]>;
}

const SAMPLE_LINE =
  /^(fabricd_queue_depth|fabricd_agent_slots|fabricd_agent_tasks_total)\{([^}]*)\} (\S+)/;

/**
 * Sums the task counts of a Prometheus text exposition; other metrics and
 * malformed lines are ignored.
 */
export function parseTaskMetrics(text: string): TaskCounts {
  const counts: TaskCounts = { depth: 0, inflight: 0, busy: 0, done: 0, failed: 0, canceled: 0 };
  for (const line of text.split("\n")) {
    const match = SAMPLE_LINE.exec(line);
    if (!match) continue;
    const value = Number(match[3]);
    if (!Number.isFinite(value)) continue;
    const state = /(?:^|,)state="([^"]*)"/.exec(match[2]!)?.[1] ?? "";
    const key = KEYS[`${match[1]} ${state}`];
    if (key) counts[key] += value;
  }
  return counts;
}

const KEYS: Record<string, keyof TaskCounts> = {
  "fabricd_queue_depth ready": "depth",
  "fabricd_queue_depth inflight": "inflight",
  "fabricd_agent_slots busy": "busy",
  "fabricd_agent_tasks_total DONE": "done",
  "fabricd_agent_tasks_total FAILED": "failed",
  "fabricd_agent_tasks_total CANCELED": "canceled",
};

/** An agent incarnation's counters at the last sample. */
interface Ended {
  done: number;
  failed: number;
}

/** Samples the fabric's task queue on a timer into a bounded ring. */
export class TaskSampler {
  #scrape: (records: ServiceRecord[]) => Promise<ScrapeResult[]>;
  #records: () => Promise<ServiceRecord[]>;
  #intervalMs: number;
  #capacity: number;
  #ring: TaskSample[] = [];
  /** By `id#incarnation`, only for the agents ALIVE at the last sample. */
  #ended = new Map<string, Ended>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;

  /**
   * A sampler that finds queues and agents in `records()` (called once per
   * sample: pass a cache, not the registry).
   * @throws {RangeError} when `intervalMs` or `capacity` is not positive.
   */
  constructor(
    keys: FabricKeys,
    records: () => Promise<ServiceRecord[]>,
    options: TaskSamplerOptions = {},
  ) {
    this.#scrape = options.scrape ?? ((records) =>
      scrapeFabric(keys, records, {
        only: (r) => r.role === "queue" || r.role === "agent",
        timeoutMs: options.timeoutMs ?? 1500,
      }));
    this.#records = records;
    this.#intervalMs = options.intervalMs ?? 2000;
    this.#capacity = options.capacity ?? 150;
    if (!(this.#intervalMs > 0) || !(this.#capacity >= 1)) {
      throw new RangeError(
        `Invalid sampler interval ${this.#intervalMs} ms or capacity ${this.#capacity}: give positive numbers`,
      );
    }
  }

  /** Time between samples, ms. */
  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** Samples every `intervalMs` until {@linkcode TaskSampler.stop}; calling it again does nothing. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const tick = async (): Promise<void> => {
      await this.sample().catch(() => undefined);
      if (this.#running) this.#timer = setTimeout(tick, this.#intervalMs);
    };
    this.#timer = setTimeout(tick, 0);
  }

  /** Stops sampling; idempotent. */
  stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
  }

  /** The samples kept, oldest first (a copy). */
  samples(): TaskSample[] {
    return [...this.#ring];
  }

  /**
   * Scrapes the ALIVE queues and agents once and adds a sample to the ring.
   * @throws {Error} when `records()` throws (the registry is away); no sample is added.
   */
  async sample(now: number = Date.now()): Promise<TaskSample> {
    const records = await this.#records();
    const results = await this.#scrape(records);
    const previous = this.#ring.at(-1);
    const seconds = previous ? Math.max(0.001, (now - previous.at) / 1000) : 1;
    const sample: TaskSample = { at: now, depth: 0, inflight: 0, running: 0, done: 0, failed: 0 };
    const ended = new Map<string, Ended>();
    for (const result of results) {
      if (result.text === null) {
        const key = `${result.record.id}#${result.record.incarnation}`;
        const last = this.#ended.get(key);
        if (last) ended.set(key, last);
        continue;
      }
      const counts = parseTaskMetrics(result.text);
      sample.depth += counts.depth;
      sample.inflight += counts.inflight;
      sample.running += counts.busy;
      if (result.record.role !== "agent") continue;
      const key = `${result.record.id}#${result.record.incarnation}`;
      const totals = { done: counts.done, failed: counts.failed + counts.canceled };
      ended.set(key, totals);
      // An agent seen for the first time counts from zero only when it started
      // after the last sample; otherwise its totals predate this UI.
      const last = this.#ended.get(key) ??
        (previous && result.record.started >= previous.at ? { done: 0, failed: 0 } : totals);
      sample.done += Math.max(0, totals.done - last.done) / seconds;
      sample.failed += Math.max(0, totals.failed - last.failed) / seconds;
    }
    this.#ended = ended;
    this.#ring.push(sample);
    if (this.#ring.length > this.#capacity) {
      this.#ring.splice(0, this.#ring.length - this.#capacity);
    }
    return sample;
  }
}
