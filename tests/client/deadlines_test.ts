import assert from "node:assert/strict";
import { Deadlines } from "../../src/client/deadlines.ts";

const aborted = (signal: AbortSignal): Promise<unknown> =>
  new Promise((resolve) => signal.addEventListener("abort", () => resolve(signal.reason)));

Deno.test("Deadlines.start() aborts each signal with a TimeoutError when its own time is up", async () => {
  const deadlines = new Deadlines();
  const started = performance.now();
  const late = deadlines.start(1000);
  const soon = deadlines.start(20);
  const reason = await aborted(soon.signal);
  assert.ok(reason instanceof DOMException && reason.name === "TimeoutError");
  // A deadline is checked against the clock it was set by: never early.
  assert.ok(performance.now() - started >= 20, "not before its time");
  assert.equal(late.signal.aborted, false, "a later deadline still runs");
  await aborted(late.signal);
  assert.ok(performance.now() - started >= 1000);
  assert.equal(deadlines.size, 0, "fired deadlines are forgotten");
});

Deno.test("Deadlines.release() keeps a signal from aborting and stops the timer with the last one", async () => {
  const deadlines = new Deadlines();
  const first = deadlines.start(30);
  const second = deadlines.start(30);
  deadlines.release(first);
  deadlines.release(first);
  assert.equal(deadlines.size, 1);
  await aborted(second.signal);
  assert.equal(first.signal.aborted, false);
  // No timer is left: the test's sanitizer fails on one still pending.
  const third = deadlines.start(60_000);
  deadlines.release(third);
  assert.equal(deadlines.size, 0);
});

Deno.test("Deadlines.start() re-arms for an earlier deadline and throws RangeError for a bad time", async () => {
  const deadlines = new Deadlines();
  const long = deadlines.start(60_000);
  const short = deadlines.start(10);
  await aborted(short.signal);
  assert.equal(long.signal.aborted, false);
  deadlines.release(long);
  for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => deadlines.start(bad), RangeError);
  }
});
