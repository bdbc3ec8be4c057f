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

/**
 * Lets the current turn end (a batch goes out then) and timers of `ms` run: for what the
 * broker does at the end of a turn, or to show a blocked sink is not written to.
 */
export function tick(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
