import type { BatchFrame, ServerFrame, SubscriberSink } from "../../../src/services/pubsub/mod.ts";

/** A sink that records frames; set `bufferedAmount` to stall or release it. */
export class FakeSink implements SubscriberSink {
  texts: string[] = [];
  bufferedAmount = 0;
  /** When set, every send throws, as a dead socket would. */
  refuse = false;
  closedWith: { code: number; reason: string } | null = null;

  send(text: string): void {
    if (this.refuse) throw new Error("socket is gone");
    this.texts.push(text);
  }

  close(code: number, reason: string): void {
    this.closedWith = { code, reason };
  }

  /** The frames received, parsed, with the frames of a batch in its place. */
  get frames(): ServerFrame[] {
    return this.texts.flatMap((t) => {
      const frame = JSON.parse(t) as ServerFrame | BatchFrame;
      return frame.op === "batch" ? frame.frames : [frame];
    });
  }

  /** The messages received, in order. */
  get messages(): unknown[] {
    return this.frames.flatMap((f) => f.op === "message" ? [f.message] : []);
  }
}

/** Lets queued microtasks and timers of `ms` run. */
export function tick(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until `check` holds, polling every 2 ms, or fails after `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Condition not met within ${timeoutMs} ms`);
    await tick(2);
  }
}
