/**
 * The small harness shared by fabricd's benchmarks: statistics, the `RESULT`
 * line, closed-loop load, and the CPU time of a process from `/proc`.
 *
 * Benchmarks never assert timings (DESIGN.md "Performance"): they print what
 * they measured and a ratio against a baseline measured in the same run.
 * @module
 */

/** What every benchmark reports on its last line; extra fields are allowed. */
export interface BenchResult {
  name: string;
  /** The measured value. */
  value: number;
  /** The same quantity for the baseline, measured in the same run. */
  baseline: number;
  /** `value / baseline`. */
  ratio: number;
  unit: string;
  /** A condition on the ratio, e.g. "ratio <= 3". */
  goal?: string;
  goal_met?: boolean;
  [extra: string]: unknown;
}

/** A benchmark that `scripts/bench.ts` can run by name. */
export interface Benchmark {
  /** Kebab-case name given on the command line. */
  name: string;
  /** One line for the usage text. */
  description: string;
  /**
   * Runs the benchmark, printing progress, and returns its result.
   * @throws {Error} only when the benchmark could not run at all.
   */
  run(): Promise<BenchResult>;
}

/** Summary statistics of a sample, in its own unit. */
export interface Summary {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/**
 * The `p`-th percentile (0-100) of `samples`, interpolated linearly between
 * the closest ranks (so `percentile(x, 50)` is the usual median).
 * @throws {RangeError} when `samples` is empty or `p` is outside 0-100.
 */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new RangeError("Cannot take a percentile of no samples");
  return ofSorted([...samples].sort((a, b) => a - b), p);
}

/**
 * The median of `samples`.
 * @throws {RangeError} when `samples` is empty.
 */
export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

/**
 * Count, extremes, mean and the usual percentiles of `samples`.
 * @throws {RangeError} when `samples` is empty.
 */
export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new RangeError("Cannot summarize no samples");
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number): number => ofSorted(sorted, p);
  return {
    n: sorted.length,
    min: at(0),
    p50: at(50),
    p90: at(90),
    p99: at(99),
    max: at(100),
    mean: sorted.reduce((sum, x) => sum + x, 0) / sorted.length,
  };
}

function ofSorted(sorted: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`Percentile must be 0-100, got ${p}`);
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.min(low + 1, sorted.length - 1);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (rank - low);
}

/** `x` rounded to `digits` decimals (default 2), for readable results. */
export function round(x: number, digits = 2): number {
  const scale = 10 ** digits;
  return Math.round(x * scale) / scale;
}

/** Prints the one `RESULT {json}` line that ends a benchmark's output. */
export function printResult(result: BenchResult): void {
  console.log(`RESULT ${JSON.stringify(result)}`);
}

/** Prints one line of human-readable progress, prefixed with the benchmark's name. */
export function say(name: string, text: string): void {
  console.log(`[${name}] ${text}`);
}

/**
 * A positive number from the environment variable `name`, else `fallback`.
 * @throws {RangeError} when the variable is set but not a positive number.
 */
export function envNumber(name: string, fallback: number): number {
  const text = Deno.env.get(name);
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!(value > 0)) throw new RangeError(`${name} must be a positive number, got "${text}"`);
  return value;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`'s value, or `fallback` when it has not settled within `ms`. */
export async function within<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@linkcode closedLoop}. */
export interface ClosedLoopOptions {
  /** Concurrent workers, each sending its next request when the last one finished. */
  workers: number;
  /** Time before counting starts, ms. */
  warmupMs: number;
  /** Time during which completions are counted, ms. */
  durationMs: number;
}

/** What {@linkcode closedLoop} measured in its counting window. */
export interface ClosedLoopReport {
  /** Tasks that succeeded within the window. */
  completed: number;
  /** Tasks that failed within the window. */
  errors: number;
  /** Length of the window, s. */
  seconds: number;
  /** Latency of each successful task in the window, ms. */
  latenciesMs: number[];
  /** Message of the first failure, or "". */
  firstError: string;
}

/**
 * Runs `task` in `workers` closed loops for `warmupMs + durationMs`, counting
 * only tasks that start and finish inside the last `durationMs`. A failing task
 * is counted as an error and its worker goes on.
 */
export async function closedLoop(
  options: ClosedLoopOptions,
  task: () => Promise<void>,
): Promise<ClosedLoopReport> {
  const start = performance.now();
  const from = start + options.warmupMs;
  const until = from + options.durationMs;
  const report: ClosedLoopReport = {
    completed: 0,
    errors: 0,
    seconds: options.durationMs / 1000,
    latenciesMs: [],
    firstError: "",
  };
  const worker = async (): Promise<void> => {
    while (performance.now() < until) {
      const began = performance.now();
      let failure: unknown = null;
      try {
        await task();
      } catch (error) {
        failure = error;
      }
      const ended = performance.now();
      if (began < from || ended > until) continue;
      if (failure === null) {
        report.completed++;
        report.latenciesMs.push(ended - began);
      } else {
        report.errors++;
        report.firstError ||= failure instanceof Error ? failure.message : String(failure);
      }
    }
  };
  await Promise.all(Array.from({ length: options.workers }, worker));
  return report;
}

/**
 * CPU time (user + system, all threads) used so far by process `pid`, in
 * seconds, from `/proc/PID/stat`; `ticksPerSecond` is `getconf CLK_TCK`.
 */
export { procCpuSeconds as processCpuSeconds } from "../../src/metrics/service_metrics.ts";

/**
 * CPU time the whole machine has spent busy (all CPUs, neither idle nor
 * waiting for I/O) since boot, in seconds, from `/proc/stat`. Sampled around a
 * run, it shows how much other processes competed with the benchmark.
 * @throws {Error} when `/proc/stat` is unreadable.
 */
export function machineBusySeconds(ticksPerSecond: number): number {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0] ?? "";
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  // Fields 9 and 10 (guest time) are already counted in user and nice.
  const total = ticks.slice(0, 8).reduce((sum, t) => sum + t, 0);
  return (total - idle) / ticksPerSecond;
}

/**
 * Waits until the machine is quiet: a 250 ms window in which all CPUs
 * together were busy less than `share` of one core (default 0.25), or
 * `maxMs` passed (default 10 s). A baseline measured right after services
 * started would otherwise share the machine with their start-up (a spawner
 * refilling its warm pool starts Deno processes in the background).
 * @returns whether it got quiet within `maxMs`.
 */
export async function waitQuiet(
  ticksPerSecond: number,
  share = 0.25,
  maxMs = 10_000,
): Promise<boolean> {
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    const before = machineBusySeconds(ticksPerSecond);
    await sleep(250);
    if (machineBusySeconds(ticksPerSecond) - before < share * 0.25) return true;
  }
  return false;
}

/** Clock ticks per second of `/proc` times (`getconf CLK_TCK`), 100 when unknown. */
export async function clockTicksPerSecond(): Promise<number> {
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stderr: "null" }).output();
    const ticks = Number(new TextDecoder().decode(out.stdout).trim());
    return out.success && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
}

/** Whether process `pid` exists and is not a zombie. */
export function isRunning(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/**
 * Waits up to `timeoutMs` for every process of `pids` to end; returns those
 * still running.
 */
export async function waitExited(pids: Iterable<number>, timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = [...pids].filter((pid) => pid > 0);
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(50);
    alive = alive.filter(isRunning);
  }
  return alive;
}
