/** Options of {@linkcode eventually}. */
export interface EventuallyOptions {
  /** How long to keep probing before giving up, in ms. Default 10 000. */
  timeoutMs?: number;
  /**
   * The longest pause between two probes, in ms. Pauses start at 1 ms and double up to
   * it, so a condition that holds soon is seen soon and a slow one is not polled hard.
   * Default 50.
   */
  intervalMs?: number;
  /**
   * What is awaited, for the timeout message ("pilot RUNNING"). Default: the probe's
   * source text, shortened.
   */
  what?: string;
}

/** `T` without the values {@linkcode eventually} treats as "not yet". */
export type Truthy<T> = Exclude<T, false | 0 | 0n | "" | null | undefined>;

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_INTERVAL_MS = 50;
const SHOWN_CHARS = 300;

/**
 * Calls `probe` until it returns (or resolves to) a truthy value, and returns that value.
 *
 * A probe that throws or rejects has not succeeded yet either; it is called again. So both
 * kinds of wait are written the same way: a condition (`() => queue.waiting === 1`) or a
 * lookup (`async () => (await registry.get(id))?.record`) returns a falsy value until it
 * holds; a probe made of assertions (or calls that fail until a service is up) throws
 * until it holds, and ends with `return true`.
 *
 * The probe is always called at least once, and once more at the deadline. A probe that
 * never settles is not interrupted: bound its own I/O (`AbortSignal.timeout()`).
 *
 * @throws {Error} when `timeoutMs` passes first: the message names `what` and the last
 * value the probe returned or the last error it threw (also set as the error's `cause`).
 * @throws {RangeError} when `timeoutMs` or `intervalMs` is negative or not finite.
 */
export async function eventually<T>(
  probe: () => T | Promise<T>,
  options: EventuallyOptions = {},
): Promise<Truthy<T>> {
  const timeoutMs = checked("timeoutMs", options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const intervalMs = checked("intervalMs", options.intervalMs ?? DEFAULT_INTERVAL_MS);
  const deadline = performance.now() + timeoutMs;
  let pause = Math.min(1, intervalMs);
  let last: { value: unknown } | { error: unknown } = { value: undefined };
  for (;;) {
    // Decided before the probe, so the last probe starts at or after the deadline.
    const final = performance.now() >= deadline;
    try {
      const value = await probe();
      if (value) return value as Truthy<T>;
      last = { value };
    } catch (error) {
      last = { error };
    }
    if (final) break;
    const left = deadline - performance.now();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(pause, left))));
    pause = Math.min(pause * 2, intervalMs);
  }
  const what = options.what ?? shorten(String(probe));
  if ("error" in last) {
    const reason = last.error instanceof Error ? last.error.message : show(last.error);
    throw new Error(
      `Timed out after ${timeoutMs} ms waiting for "${what}": the probe last threw "${
        shorten(reason)
      }"`,
      { cause: last.error },
    );
  }
  throw new Error(
    `Timed out after ${timeoutMs} ms waiting for "${what}": the probe last returned ${
      show(last.value)
    }`,
  );
}

function checked(name: string, ms: number): number {
  if (!Number.isFinite(ms) || ms < 0) {
    throw new RangeError(`Invalid ${name} "${ms}": use a finite number of ms, 0 or more`);
  }
  return ms;
}

function show(value: unknown): string {
  return shorten(Deno.inspect(value, { depth: 4, colors: false }));
}

function shorten(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > SHOWN_CHARS ? `${flat.slice(0, SHOWN_CHARS - 3)}...` : flat;
}
