import assert from "node:assert/strict";
import { CoreSlots } from "../../../src/services/agent/slots.ts";

Deno.test("CoreSlots.acquire() hands out cores at once while enough are free", async () => {
  const slots = new CoreSlots(4);
  const a = await slots.acquire(3);
  assert.equal(slots.free, 1);
  a();
  a();
  assert.equal(slots.free, 4, "a release is idempotent");
});

Deno.test("CoreSlots.acquire() serves waiters first come, first served", async () => {
  const slots = new CoreSlots(2);
  const order: string[] = [];
  const first = await slots.acquire(2);
  const wide = slots.acquire(2).then((release) => (order.push("wide"), release));
  const narrow = slots.acquire(1).then((release) => (order.push("narrow"), release));
  assert.equal(slots.waiting, 2);
  first();
  const releaseWide = await wide;
  assert.deepEqual(order, ["wide"], "the narrow one does not overtake the wide one");
  assert.equal(slots.free, 0);
  releaseWide();
  (await narrow)();
  assert.deepEqual(order, ["wide", "narrow"]);
  assert.equal(slots.free, 2);
});

Deno.test("CoreSlots.acquire() rejects when aborted and lets the next waiter in", async () => {
  const slots = new CoreSlots(2);
  const held = await slots.acquire(1);
  const abort = new AbortController();
  const wide = slots.acquire(2, { signal: abort.signal });
  const narrow = slots.acquire(1);
  abort.abort(new Error("canceled"));
  await assert.rejects(wide, /canceled/);
  (await narrow)();
  held();
  assert.equal(slots.free, 2);
  assert.equal(slots.waiting, 0);
});

Deno.test("CoreSlots.acquire() rejects a task wider than the agent", async () => {
  const slots = new CoreSlots(2);
  await assert.rejects(slots.acquire(3), RangeError);
  await assert.rejects(slots.acquire(0), RangeError);
  assert.throws(() => new CoreSlots(0), RangeError);
});
