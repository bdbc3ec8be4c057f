import assert from "node:assert/strict";
import { eventually } from "./_eventually.ts";

Deno.test("eventually() returns the first truthy value and probes no more", async () => {
  const answers = [undefined, false, 0, "", null, "ready", "later"];
  let calls = 0;
  const value = await eventually(() => answers[calls++], { intervalMs: 1 });
  assert.equal(value, "ready");
  assert.equal(calls, 6);
});

Deno.test("eventually() probes again after the probe throws or rejects", async () => {
  let calls = 0;
  const value = await eventually(async () => {
    calls++;
    if (calls === 1) throw new Error("not up yet");
    if (calls === 2) return await Promise.reject(new Error("still not up"));
    return { calls };
  }, { intervalMs: 1 });
  assert.deepEqual(value, { calls: 3 });
});

Deno.test("eventually() throws naming what it waited for and the last value when the time runs out", async () => {
  let n = 0;
  const error = await eventually(() => ({ n: n++, ok: false }).ok && "never", {
    timeoutMs: 50,
    intervalMs: 5,
    what: "the pilot RUNNING",
  }).catch((e: unknown) => e);
  assert.ok(error instanceof Error);
  assert.match(error.message, /^Timed out after 50 ms waiting for "the pilot RUNNING": /);
  assert.match(error.message, /the probe last returned false$/);
  assert.ok(n >= 2, `probed ${n} times`);
});

Deno.test("eventually() names the last error, as message and cause, when a throwing probe runs out of time", async () => {
  let n = 0;
  const errors: Error[] = [];
  const error = await eventually(() => {
    const e = new Error(`connection refused #${++n}`);
    errors.push(e);
    throw e;
  }, { timeoutMs: 30, what: "the registry up" }).catch((e: unknown) => e);
  assert.ok(error instanceof Error);
  assert.match(error.message, /waiting for "the registry up": the probe last threw/);
  assert.ok(error.message.includes(`"connection refused #${n}"`), error.message);
  assert.equal(error.cause, errors.at(-1));
});

Deno.test("eventually() names the probe by its source when no what is given", async () => {
  const queue = { waiting: 0 };
  await assert.rejects(
    eventually(() => queue.waiting === 1, { timeoutMs: 10 }),
    // The source as Deno runs it: the transpiler may change its spacing.
    /waiting for "\(\) ?=> ?queue\.waiting === 1": the probe last returned false/,
  );
});

Deno.test("eventually() probes once more at the deadline and once with timeoutMs 0", async () => {
  const start = performance.now();
  const late = await eventually(() => performance.now() - start >= 40, {
    timeoutMs: 40,
    intervalMs: 1000,
  });
  assert.equal(late, true);
  let calls = 0;
  await assert.rejects(eventually(() => ++calls > 1, { timeoutMs: 0 }), /Timed out after 0 ms/);
  assert.equal(calls, 1);
});

Deno.test("eventually() sees a condition that soon holds at once, whatever intervalMs", async () => {
  let ready = false;
  setTimeout(() => ready = true, 0);
  const start = performance.now();
  await eventually(() => ready, { intervalMs: 5000 });
  const took = performance.now() - start;
  assert.ok(took < 1000, `took ${took} ms: the first pauses are short`);
});

Deno.test("eventually() backs off to pauses of intervalMs, not shorter", async () => {
  const at: number[] = [];
  await eventually(() => at.push(performance.now()) < 0, { timeoutMs: 600, intervalMs: 50 })
    .catch(() => {});
  const gaps = at.slice(1).map((t, i) => t - at[i]!);
  // Pauses of 1, 2, 4, 8, 16 and 32 ms, then 50 ms; the last one ends at the deadline.
  const steady = gaps.slice(6, -2);
  assert.ok(steady.length >= 1, `${at.length} probes in 600 ms`);
  assert.ok(steady.every((gap) => gap >= 45), `pauses shorter than intervalMs: ${steady}`);
  // How much longer a pause may be depends on the machine's load: not asserted (no timed
  // assertions in tests); the number of probes shows the pauses stay near intervalMs.
  assert.ok(at.length <= 600 / 45 + 7, `more probes than pauses of intervalMs allow: ${at.length}`);
});

Deno.test("eventually() refuses a negative or infinite timeoutMs or intervalMs", async () => {
  for (const options of [{ timeoutMs: -1 }, { timeoutMs: Infinity }, { intervalMs: Number.NaN }]) {
    await assert.rejects(eventually(() => true, options), RangeError);
  }
});
