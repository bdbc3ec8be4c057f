import assert from "node:assert/strict";
import { ENDED_KEPT_MS, EndedLedger, MAX_ENDED_KEPT } from "../../src/base/ended_ledger.ts";

function ledger() {
  const clock = { now: 1_800_000_000_000 };
  const forgotten: number[] = [];
  const ended = new EndedLedger<number>((key) => forgotten.push(key), { now: () => clock.now });
  return { clock, forgotten, ended };
}

Deno.test("EndedLedger drops the earliest ended beyond MAX_ENDED_KEPT; a key that ends again counts as newest", () => {
  const { clock, forgotten, ended } = ledger();
  for (let key = 0; key < MAX_ENDED_KEPT; key++) ended.ended(key, clock.now);
  ended.ended(0, clock.now);
  assert.deepEqual(forgotten, []);
  ended.ended(MAX_ENDED_KEPT, clock.now);
  ended.ended(MAX_ENDED_KEPT + 1, clock.now);
  assert.deepEqual(forgotten, [1, 2]);
});

Deno.test("EndedLedger drops a key once it ended over ENDED_KEPT_MS ago, and never a deleted one", () => {
  const { clock, forgotten, ended } = ledger();
  ended.ended(1, clock.now);
  ended.ended(2, clock.now + 10);
  ended.ended(3, clock.now + 20);
  ended.delete(2);
  clock.now += ENDED_KEPT_MS + 15;
  ended.dropDue();
  assert.deepEqual(forgotten, [1]);
  clock.now += 10;
  ended.dropDue();
  assert.deepEqual(forgotten, [1, 3]);
});
