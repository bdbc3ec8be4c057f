/**
 * The fan-out driver of `pubsub-vs-nats`, the same for both systems: one
 * publisher and N subscribers on one topic, all in this process, with a
 * windowed publisher so that a system is measured at the rate it sustains,
 * not at the rate its buffers fill.
 * @module
 */

/** What a subscriber of a {@linkcode FanoutSystem} is told. */
export interface FanoutHandlers {
  /** A message arrived at subscriber `index`; `probe` when it is a readiness probe. */
  message(index: number, probe: boolean): void;
  /** The broker dropped `count` messages for subscriber `index` (slow consumer). */
  dropped(index: number, count: number): void;
}

/** A pub/sub system driven by {@linkcode measureFanout}. */
export interface FanoutSystem {
  /** Shown in progress lines. */
  readonly name: string;
  /** Publishes one data message (or a probe) without waiting. */
  publish(probe: boolean): void;
  /** Closes the publisher and every subscriber. */
  close(): Promise<void>;
}

/** Options of {@linkcode measureFanout}. */
export interface FanoutOptions {
  /** Data messages to publish. */
  messages: number;
  /**
   * Most messages published and not yet received (or dropped) by every
   * subscriber; the publisher waits while this many are outstanding.
   */
  window: number;
  /** Longest time without a message reaching every subscriber, ms. */
  stallMs: number;
}

/** What {@linkcode measureFanout} measured. */
export interface FanoutReport {
  /** Data messages published. */
  published: number;
  /** Time from the first publish to the last subscriber's last message, ms. */
  ms: number;
  /** Data messages received, per subscriber. */
  received: number[];
  /** Data messages the broker dropped, per subscriber. */
  dropped: number[];
}

/**
 * The handlers a system calls, and the phase they count: a system is opened
 * with {@linkcode FanoutCounter.handlers} before the first phase.
 */
export class FanoutCounter {
  readonly #received: number[];
  readonly #dropped: number[];
  readonly #ready: boolean[];
  #wake: (() => void) | null = null;
  /** Woken when the least-advanced subscriber reaches this many messages. */
  #wakeAt = Infinity;

  /** A counter for `subscribers` subscribers. */
  constructor(subscribers: number) {
    this.#received = new Array<number>(subscribers).fill(0);
    this.#dropped = new Array<number>(subscribers).fill(0);
    this.#ready = new Array<boolean>(subscribers).fill(false);
  }

  /** The handlers to open a system with. */
  readonly handlers: FanoutHandlers = {
    message: (index, probe) => {
      if (probe) {
        this.#ready[index] = true;
        this.#check();
        return;
      }
      this.#received[index]!++;
      this.#check();
    },
    dropped: (index, count) => {
      this.#dropped[index]! += count;
      this.#check();
    },
  };

  /** Messages every subscriber has received or had dropped. */
  get floor(): number {
    let floor = Infinity;
    for (let i = 0; i < this.#received.length; i++) {
      floor = Math.min(floor, this.#received[i]! + this.#dropped[i]!);
    }
    return floor;
  }

  /** Whether every subscriber has received a probe. */
  get ready(): boolean {
    return this.#ready.every(Boolean);
  }

  /** Data messages received, per subscriber. */
  get received(): number[] {
    return [...this.#received];
  }

  /** Data messages dropped, per subscriber. */
  get dropped(): number[] {
    return [...this.#dropped];
  }

  /** Starts a new phase: every count back to zero. */
  reset(): void {
    this.#received.fill(0);
    this.#dropped.fill(0);
  }

  /** Resolves once `floor` reaches `at` or readiness changes, or after `ms`. */
  wait(at: number, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#wakeUp(), ms);
      this.#wakeAt = at;
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#check();
    });
  }

  #check(): void {
    if (this.#wake && this.floor >= this.#wakeAt) this.#wakeUp();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = null;
    this.#wakeAt = Infinity;
    wake?.();
  }
}

/**
 * Publishes probes until every subscriber has received one, so that no
 * subscription is still on its way when a phase starts.
 * @throws {Error} when a subscriber gets no probe within `timeoutMs`.
 */
export async function awaitSubscribers(
  system: FanoutSystem,
  counter: FanoutCounter,
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!counter.ready) {
    if (performance.now() > deadline) {
      throw new Error(`${system.name}: a subscriber got no message within ${timeoutMs} ms`);
    }
    system.publish(true);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Publishes `messages` data messages through `system`, never more than
 * `window` ahead of the slowest subscriber (a dropped message counts as
 * settled), and times it from the first publish to the moment every
 * subscriber has received or lost the last one.
 * @throws {Error} when no message reaches every subscriber for `stallMs`.
 */
export async function measureFanout(
  system: FanoutSystem,
  counter: FanoutCounter,
  options: FanoutOptions,
): Promise<FanoutReport> {
  counter.reset();
  const { messages, window } = options;
  // Refill once half the window has drained, so publishes go out in batches.
  const refill = Math.max(1, Math.floor(window / 2));
  const start = performance.now();
  let published = 0;
  let progress = { floor: 0, at: start };
  while (counter.floor < messages) {
    const now = performance.now();
    if (counter.floor > progress.floor) progress = { floor: counter.floor, at: now };
    else if (now - progress.at > options.stallMs) {
      throw new Error(
        `${system.name}: stuck at ${counter.floor} of ${messages} messages reaching every ` +
          `subscriber for ${options.stallMs} ms`,
      );
    }
    const until = Math.min(messages, counter.floor + window);
    while (published < until) {
      system.publish(false);
      published++;
    }
    const target = published >= messages
      ? messages
      : Math.max(counter.floor + 1, published - window + refill);
    await counter.wait(target, 1000);
  }
  return {
    published,
    ms: performance.now() - start,
    received: counter.received,
    dropped: counter.dropped,
  };
}
