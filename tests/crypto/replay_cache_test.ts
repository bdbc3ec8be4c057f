import assert from "node:assert/strict";
import { ReplayCache } from "../../src/crypto/replay_cache.ts";

/** A window created at `created` ms, remembered until `expiresAt` ms. */
function w(expiresAt: number, created = 0): { created: number; expiresAt: number } {
  return { created, expiresAt };
}

Deno.test("ReplayCache.remember() returns true once and false for a repeat when the nonce is unexpired", () => {
  const cache = new ReplayCache();
  assert.equal(cache.remember("nonce-a", w(2_000), 1_000), true);
  assert.equal(cache.remember("nonce-a", w(2_000), 1_500), false);
  assert.equal(cache.remember("nonce-b", w(2_000), 1_500), true);
  assert.equal(cache.size, 2);
});

Deno.test("ReplayCache.remember() accepts a nonce again when its entry has expired", () => {
  const cache = new ReplayCache();
  assert.equal(cache.remember("nonce-a", w(2_000), 1_000), true);
  assert.equal(cache.remember("nonce-a", w(3_000), 2_000), true);
  assert.equal(cache.remember("nonce-a", w(3_000), 2_500), false);
});

Deno.test("ReplayCache.remember() keeps the size bounded when more nonces arrive than fit", () => {
  const cache = new ReplayCache({ maxEntries: 8 });
  for (let index = 0; index < 1_000; index++) {
    assert.equal(cache.remember(`nonce-${index}`, w(10_000 + index, index), 0), true);
    assert.ok(cache.size <= 8);
  }
});

Deno.test("ReplayCache.remember() never accepts an evicted nonce again when it is still unexpired", () => {
  const cache = new ReplayCache({ maxEntries: 4 });
  for (let index = 0; index < 20; index++) {
    cache.remember(`nonce-${index}`, w(10_000 + index, index), 0);
  }
  for (let index = 0; index < 20; index++) {
    assert.equal(cache.remember(`nonce-${index}`, w(10_000 + index, index), 1), false, `${index}`);
  }
  assert.equal(cache.remember("fresh", w(20_000, 100), 1), true);
});

Deno.test("ReplayCache.remember() accepts fresh default-lifetime nonces right after a flood of long-lived ones", () => {
  // The flood: a full cache of nonces created over one second with 60 s
  // lifetimes. Before, eviction raised a floor on expiry and refused fresh
  // 30 s requests for minutes; the floor is now on creation time.
  const cache = new ReplayCache({ maxEntries: 1_000 });
  const start = 1_000_000;
  for (let index = 0; index < 5_000; index++) {
    const created = start + Math.floor(index / 5);
    assert.equal(cache.remember(`flood-${index}`, w(created + 65_000, created), created), true);
  }
  const now = start + 2_000;
  for (let index = 0; index < 100; index++) {
    assert.equal(cache.remember(`fresh-${index}`, w(now + 35_000, now), now), true, `${index}`);
  }
  // And what was evicted stays refused.
  assert.equal(cache.remember("flood-0", w(start + 65_000, start), now), false);
});

Deno.test("ReplayCache.restore() takes in an earlier process's nonces, which are then refused", () => {
  const cache = new ReplayCache();
  cache.restore([["nonce-old-0123456", w(5_000, 0)]], 1_000);
  assert.equal(cache.remember("nonce-old-0123456", w(5_000, 0), 1_500), false);
  assert.equal(cache.remember("nonce-new-0123456", w(5_000, 0), 1_500), true);
});

Deno.test("ReplayCache.remember() sweeps expired entries when time moves on", () => {
  const cache = new ReplayCache({ maxEntries: 16 });
  for (let index = 0; index < 16; index++) cache.remember(`old-${index}`, w(1_000), 0);
  assert.equal(cache.size, 16);
  for (let index = 0; index < 4; index++) {
    assert.equal(cache.remember(`new-${index}`, w(10_000, 5_000), 5_000), true);
  }
  assert.equal(cache.size, 4);
});

Deno.test("ReplayCache throws when given bad options or arguments", () => {
  assert.throws(() => new ReplayCache({ maxEntries: 0 }), RangeError);
  assert.throws(() => new ReplayCache({ maxEntries: 1.5 }), RangeError);
  const cache = new ReplayCache();
  assert.throws(() => cache.remember("", w(1), 0), TypeError);
  assert.throws(() => cache.remember("n", w(Number.NaN), 0), RangeError);
});
