import assert from "node:assert/strict";
import { eachAtMost } from "../../src/base/at_most.ts";

Deno.test("eachAtMost visits every item once, in order, never more than atOnce at a time", async () => {
  const items = Array.from({ length: 25 }, (_, i) => i);
  const started: number[] = [];
  const indexes: number[] = [];
  let running = 0;
  let most = 0;
  await eachAtMost(items, 3, async (item, index) => {
    started.push(item);
    indexes.push(index);
    most = Math.max(most, ++running);
    await new Promise((resolve) => setTimeout(resolve, item % 4));
    running--;
  });
  assert.deepEqual(started, items);
  assert.deepEqual(indexes, items);
  assert.equal(most, 3);
});

Deno.test("eachAtMost runs one at a time when atOnce is below 1, and nothing for no items", async () => {
  let running = 0;
  let most = 0;
  await eachAtMost([1, 2, 3], 0, async () => {
    most = Math.max(most, ++running);
    await Promise.resolve();
    running--;
  });
  assert.equal(most, 1);
  await eachAtMost([], 8, () => Promise.reject(new Error("never called")));
});

Deno.test("eachAtMost rejects with the first error of a visit", async () => {
  await assert.rejects(
    eachAtMost([1, 2, 3], 2, async (item) => {
      await Promise.resolve();
      if (item === 2) throw new Error("item 2 failed");
    }),
    /item 2 failed/,
  );
});
