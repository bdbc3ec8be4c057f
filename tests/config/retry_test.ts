import assert from "node:assert/strict";
import { retry, sleep } from "../../src/config/retry.ts";

Deno.test("sleep() resolves after about ms", async () => {
  const start = performance.now();
  await sleep(30);
  assert.ok(performance.now() - start >= 25, "returned too early");
});

Deno.test("sleep() resolves at once when the signal aborts during the wait", async () => {
  const stop = new AbortController();
  const start = performance.now();
  const slept = sleep(10_000, stop.signal);
  setTimeout(() => stop.abort(), 10);
  await slept;
  assert.ok(performance.now() - start < 1000, "the abort did not end the wait");
});

Deno.test("sleep() resolves at once when the signal has already aborted", async () => {
  const start = performance.now();
  await sleep(10_000, AbortSignal.abort());
  assert.ok(performance.now() - start < 1000);
});

Deno.test("retry() returns the first success and counts attempts from 1", async () => {
  const seen: number[] = [];
  const value = await retry((attempt) => {
    seen.push(attempt);
    return attempt < 3 ? Promise.reject(new Error(`fail ${attempt}`)) : Promise.resolve("ok");
  }, { firstDelayMs: 1 });
  assert.equal(value, "ok");
  assert.deepEqual(seen, [1, 2, 3]);
});

Deno.test("retry() throws the last error when attempts are used up", async () => {
  let calls = 0;
  await assert.rejects(
    retry(() => Promise.reject(new Error(`fail ${++calls}`)), { attempts: 4, firstDelayMs: 1 }),
    { message: "fail 4" },
  );
  assert.equal(calls, 4);
});

Deno.test("retry() waits longer after each failure, up to maxDelayMs", async () => {
  const gaps: number[] = [];
  const delays: number[] = [];
  let last = performance.now();
  await assert.rejects(retry(() => {
    const now = performance.now();
    gaps.push(now - last);
    last = now;
    return Promise.reject(new Error("no"));
  }, {
    attempts: 6,
    firstDelayMs: 10,
    maxDelayMs: 40,
    retryIf: (_error, { delayMs }) => (delays.push(delayMs), true),
  }));
  assert.deepEqual(delays, [10, 20, 40, 40, 40]);
  // gaps[0] is the call itself; each later gap is at least its planned delay.
  for (const [i, delay] of delays.entries()) {
    assert.ok(gaps[i + 1]! >= delay - 2, `gap ${i + 1} was ${gaps[i + 1]} ms, planned ${delay}`);
  }
});

Deno.test("retry() takes jitter off the planned delay, never more", async () => {
  const delays: number[] = [];
  await assert.rejects(retry(() => Promise.reject(new Error("no")), {
    attempts: 20,
    firstDelayMs: 4,
    factor: 1,
    jitter: 0.5,
    retryIf: (_error, { delayMs }) => (delays.push(delayMs), true),
  }));
  assert.equal(delays.length, 19);
  for (const delay of delays) assert.ok(delay > 2 - 1e-9 && delay <= 4, `delay ${delay}`);
  assert.ok(new Set(delays).size > 1, "jitter drew the same delay every time");
});

Deno.test("retry() stops at once when retryIf says no", async () => {
  let calls = 0;
  await assert.rejects(
    retry(() => Promise.reject(new TypeError(`fail ${++calls}`)), {
      firstDelayMs: 1,
      retryIf: (error) => !(error instanceof TypeError),
    }),
    TypeError,
  );
  assert.equal(calls, 1);
});

Deno.test("retry() stops waiting and throws the last error when the signal aborts", async () => {
  const stop = new AbortController();
  let calls = 0;
  const start = performance.now();
  const retrying = retry(() => {
    calls++;
    return Promise.reject(new Error("down"));
  }, { firstDelayMs: 10_000, signal: stop.signal });
  setTimeout(() => stop.abort(), 10);
  await assert.rejects(retrying, { message: "down" });
  assert.equal(calls, 1);
  assert.ok(performance.now() - start < 1000, "the abort did not end the wait");
});

Deno.test("retry() rejects options that cannot work", async () => {
  const fn = () => Promise.resolve(1);
  await assert.rejects(retry(fn, { attempts: 0, firstDelayMs: 1 }), RangeError);
  await assert.rejects(retry(fn, { firstDelayMs: -1 }), RangeError);
  await assert.rejects(retry(fn, { firstDelayMs: 1, factor: 0.5 }), RangeError);
  await assert.rejects(retry(fn, { firstDelayMs: 1, jitter: 2 }), RangeError);
});
