import assert from "node:assert/strict";
import { RecordCache } from "../../src/ui/record_cache.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";

Deno.test("RecordCache.list() asks the registry once per maxAgeMs and shares a listing under way", async () => {
  let listings = 0;
  const records = [serviceRecord("spw-00000001")];
  const cache = new RecordCache(() => {
    listings++;
    return Promise.resolve(records);
  }, { maxAgeMs: 60_000 });
  await Promise.all([cache.list(), cache.list(), cache.list()]);
  await cache.list();
  assert.equal(listings, 1);
  cache.invalidate();
  await cache.list();
  assert.equal(listings, 2);
});

Deno.test("RecordCache.apply() keeps the newer record, from a change or from the listing", async () => {
  const listed = serviceRecord("spw-00000001", { state: "ALIVE", incarnation: 1, updated: 100 });
  let release = (_: ServiceRecord[]): void => {};
  const cache = new RecordCache(() => new Promise((resolve) => release = resolve));
  const listing = cache.list();
  // A change that arrives while the (older) listing is under way wins.
  cache.apply({ ...listed, state: "DEAD", updated: 200 });
  release([listed]);
  assert.equal((await listing)[0]!.state, "DEAD");
  cache.apply({ ...listed, state: "SUSPECT", updated: 150 });
  assert.equal((await cache.list())[0]!.state, "DEAD", "an older change is ignored");
  cache.apply({ ...listed, state: "ALIVE", incarnation: 2, updated: 10 });
  assert.deepEqual((await cache.list()).map((r) => [r.state, r.incarnation]), [["ALIVE", 2]]);
});
