/**
 * `setTimeout`, `setInterval` and their `clear` functions, for every module
 * of `src/`, without Deno's Node layer.
 *
 * In Deno 2.9 the global `setTimeout` is Node's: its first use loads
 * `node:timers` and with it the Node layer (async hooks, errors, `inspect`:
 * 3.5-5 MB of a service's resident memory; docs/performance.md
 * "idle-memory"). Both are built on the timer lists of Deno's core, which
 * this module uses directly when the runtime exposes them
 * (`Deno[Deno.internal].core`, as 2.9 does); anywhere else it falls back to
 * the globals, the same behaviour at the old cost. `tests/base/timers_test.ts`
 * says which one this Deno gets.
 *
 * A timer keeps the process alive until it fires or is cleared, unless
 * `unref()`ed, as in Node and Deno.
 * @module
 */

/** A timer as {@linkcode setTimeout} and {@linkcode setInterval} return it. */
export interface Timer {
  /** Lets the process end while this timer waits. */
  unref(): Timer;
  /** Keeps the process alive while this timer waits (the default). */
  ref(): Timer;
}

/** What a timer calls, with no arguments (so a promise's `resolve` will do). */
type Callback = (...args: never[]) => unknown;

/** The timer functions of Deno's core (`ext:core/01_core.js`), as far as this module uses them. */
interface CoreTimers {
  createTimer(
    callback: Callback,
    after: number,
    args: undefined,
    isRepeat: boolean,
    isRefed: boolean,
  ): object;
  cancelTimer(timer: object): void;
  refTimer(timer: object): void;
  unrefTimer(timer: object): void;
}

/** What a {@linkcode Handle} does with the timer it holds. */
interface TimerOps {
  create(callback: Callback, ms: number, repeat: boolean): unknown;
  cancel(timer: unknown): void;
  ref(timer: unknown, on: boolean): void;
}

/** The core's timer functions when this runtime exposes them all, else undefined. */
function coreTimers(): CoreTimers | undefined {
  const internal = (Deno as unknown as { internal?: symbol }).internal;
  if (typeof internal !== "symbol") return undefined;
  const core = (Deno as unknown as Record<symbol, { core?: Partial<CoreTimers> } | undefined>)[
    internal
  ]?.core;
  const names = ["createTimer", "cancelTimer", "refTimer", "unrefTimer"] as const;
  return core && names.every((name) => typeof core[name] === "function")
    ? core as CoreTimers
    : undefined;
}

const CORE = coreTimers();

/** Which timers this process uses: the core's, or the globals (which load the Node layer). */
export const TIMER_SOURCE: "core" | "globals" = CORE ? "core" : "globals";

/** A Node-style timer (Deno 2.9's globals) or a number (older Deno). */
type GlobalTimer = number | { ref(): unknown; unref(): unknown };

const OPS: TimerOps = CORE
  ? {
    create: (callback, ms, repeat) => CORE.createTimer(callback, ms, undefined, repeat, true),
    cancel: (timer) => CORE.cancelTimer(timer as object),
    ref: (timer, on) => on ? CORE.refTimer(timer as object) : CORE.unrefTimer(timer as object),
  }
  : {
    create: (callback, ms, repeat) =>
      repeat ? globalThis.setInterval(callback, ms) : globalThis.setTimeout(callback, ms),
    cancel: (timer) => globalThis.clearTimeout(timer as number),
    ref: (timer, on) => {
      const global = timer as GlobalTimer;
      if (typeof global === "number") (on ? Deno.refTimer : Deno.unrefTimer)(global);
      else if (on) global.ref();
      else global.unref();
    },
  };

class Handle implements Timer {
  readonly timer: unknown;

  constructor(callback: Callback, ms: number | undefined, repeat: boolean) {
    this.timer = OPS.create(callback, ms ?? 0, repeat);
  }

  unref(): Timer {
    OPS.ref(this.timer, false);
    return this;
  }

  ref(): Timer {
    OPS.ref(this.timer, true);
    return this;
  }
}

/** Calls `callback` once after `ms` milliseconds (at least 1). */
export function setTimeout(callback: Callback, ms?: number): Timer {
  return new Handle(callback, ms, false);
}

/** Calls `callback` every `ms` milliseconds (at least 1) until cleared. */
export function setInterval(callback: Callback, ms?: number): Timer {
  return new Handle(callback, ms, true);
}

/** Stops a timer of {@linkcode setTimeout} or {@linkcode setInterval}; nothing for `undefined` or a stopped one. */
export function clearTimeout(timer: Timer | undefined): void {
  if (timer instanceof Handle) OPS.cancel(timer.timer);
}

/** The same as {@linkcode clearTimeout}, for a timer of {@linkcode setInterval}. */
export const clearInterval: (timer: Timer | undefined) => void = clearTimeout;

/** A value that arrives after a time, and the means to call it off. */
export interface Later<T> {
  /** Resolves to the value once the time is up; never, once called off. */
  promise: Promise<T>;
  /** Stops the timer; idempotent. */
  cancel(): void;
}

/** `value` after `ms` milliseconds: the time-out side of a `Promise.race`. */
export function after<T>(ms: number, value: T): Later<T> {
  let timer: Timer | undefined;
  const promise = new Promise<T>((resolve) => timer = setTimeout(() => resolve(value), ms));
  return { promise, cancel: () => clearTimeout(timer) };
}
