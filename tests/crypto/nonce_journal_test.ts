import assert from "node:assert/strict";
import { join } from "node:path";
import { NonceJournal } from "../../src/crypto/nonce_journal.ts";
import { ReplayCache } from "../../src/crypto/replay_cache.ts";

Deno.test("NonceJournal keeps accepted nonces for the next process and drops expired ones", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fabricd-journal-" });
  try {
    let now = 1_000_000;
    const clock = () => now;
    const first = await NonceJournal.open(dir, "svc-a", { now: clock });
    const cache = new ReplayCache({ journal: first });
    assert.equal(
      cache.remember("AAAAAAAAAAAAAAAAAAAAAA", { created: now, expiresAt: now + 35_000 }, now),
      true,
    );
    assert.equal(
      cache.remember("BBBBBBBBBBBBBBBBBBBBBB", { created: now, expiresAt: now + 1_000 }, now),
      true,
    );
    first.close();
    assert.equal((await Deno.stat(join(dir, "svc-a.0"))).mode! & 0o777, 0o600);

    now += 2_000;
    const second = await NonceJournal.open(dir, "svc-a", { now: clock });
    assert.deepEqual(second.loaded.map(([nonce]) => nonce), ["AAAAAAAAAAAAAAAAAAAAAA"]);
    const restarted = new ReplayCache({ journal: second });
    restarted.restore(second.loaded, now);
    assert.equal(
      restarted.remember("AAAAAAAAAAAAAAAAAAAAAA", {
        created: now - 2_000,
        expiresAt: now + 33_000,
      }, now),
      false,
    );
    // After two hold periods the files hold nothing old.
    now += 71_000;
    second.append("CCCCCCCCCCCCCCCCCCCCCC", { created: now, expiresAt: now + 35_000 });
    now += 71_000;
    second.append("DDDDDDDDDDDDDDDDDDDDDD", { created: now, expiresAt: now + 35_000 });
    second.close();
    const third = await NonceJournal.open(dir, "svc-a", { now: clock });
    assert.deepEqual(third.loaded.map(([nonce]) => nonce), ["DDDDDDDDDDDDDDDDDDDDDD"]);
    third.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
