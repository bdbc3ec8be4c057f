import assert from "node:assert/strict";
import { ReplayCache } from "../../src/crypto/replay_cache.ts";

Deno.test("ReplayCache.remember() returns true once and false for a repeat when the nonce is unexpired", () => {
  const cache = new ReplayCache();
  assert.equal(cache.remember("nonce-a", 2_000, 1_000), true);
  assert.equal(cache.remember("nonce-a", 2_000, 1_500), false);
  assert.equal(cache.remember("nonce-b", 2_000, 1_500), true);
  assert.equal(cache.size, 2);
});

Deno.test("ReplayCache.remember() accepts a nonce again when its entry has expired", () => {
  const cache = new ReplayCache();
  assert.equal(cache.remember("nonce-a", 2_000, 1_000), true);
  assert.equal(cache.remember("nonce-a", 3_000, 2_000), true);
  assert.equal(cache.remember("nonce-a", 3_000, 2_500), false);
});

Deno.test("ReplayCache.remember() keeps the size bounded when more nonces arrive than fit", () => {
  const cache = new ReplayCache({ maxEntries: 8 });
  for (let index = 0; index < 1_000; index++) {
    assert.equal(cache.remember(`nonce-${index}`, 10_000 + index, 0), true);
    assert.ok(cache.size <= 8);
  }
});

Deno.test("ReplayCache.remember() never accepts an evicted nonce again when it is still unexpired", () => {
  const cache = new ReplayCache({ maxEntries: 4 });
  for (let index = 0; index < 20; index++) {
    cache.remember(`nonce-${index}`, 10_000 + index, 0);
  }
  for (let index = 0; index < 20; index++) {
    assert.equal(cache.remember(`nonce-${index}`, 10_000 + index, 1), false, `nonce-${index}`);
  }
  assert.equal(cache.remember("fresh", 20_000, 1), true);
});

Deno.test("ReplayCache.remember() sweeps expired entries when time moves on", () => {
  const cache = new ReplayCache({ maxEntries: 16 });
  for (let index = 0; index < 16; index++) cache.remember(`old-${index}`, 1_000, 0);
  assert.equal(cache.size, 16);
  for (let index = 0; index < 4; index++) {
    assert.equal(cache.remember(`new-${index}`, 10_000, 5_000), true);
  }
  assert.equal(cache.size, 4);
});

Deno.test("ReplayCache throws when given bad options or arguments", () => {
  assert.throws(() => new ReplayCache({ maxEntries: 0 }), RangeError);
  assert.throws(() => new ReplayCache({ maxEntries: 1.5 }), RangeError);
  const cache = new ReplayCache();
  assert.throws(() => cache.remember("", 1, 0), TypeError);
  assert.throws(() => cache.remember("n", Number.NaN, 0), RangeError);
});
