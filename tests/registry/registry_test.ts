import assert from "node:assert/strict";
import { join } from "node:path";
import { Registry } from "../../src/registry/registry.ts";
import { SqliteStore } from "../../src/registry/sqlite_store.ts";
import { NotLiveError } from "../../src/registry/store.ts";
import { livenessSettings, startLivenessSweeper } from "../../src/health/liveness.ts";
import type { RegistryEvent, ServiceRecord } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";

function alive(id: string, at: number): ServiceRecord {
  return serviceRecord(id, { started: at, lastHeartbeat: at, updated: at });
}

async function withRegistry(
  fn: (registry: Registry, clock: { now: number }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const clock = { now: 1_000_000 };
  const registry = new Registry(SqliteStore.open(join(dir, "r.db")), { now: () => clock.now });
  try {
    await fn(registry, clock);
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("startLivenessSweeper() moves a silent service to SUSPECT, then DEAD, with reasons", async () => {
  await withRegistry(async (registry, clock) => {
    const settings = livenessSettings(100);
    const sweeper = startLivenessSweeper(registry, settings);
    try {
      // The sweeper sweeps at least once a heartbeat interval: a longer gap
      // would be a pause of its own (see the test below).
      const pass = async (ms: number, beating: string[] = []): Promise<void> => {
        for (let left = ms; left > 0; left -= 50) {
          clock.now += Math.min(50, left);
          for (const id of beating) await registry.heartbeat(id, 1);
          await sweeper.sweep();
        }
      };
      await registry.put(alive("spw-a", clock.now), "up");
      await pass(settings.ttlMs + 1, ["spw-a"]); // grace after a (re)start: one full TTL
      await pass(settings.suspectMs + 10);
      assert.equal((await registry.get("spw-a"))?.state, "SUSPECT");
      await pass(settings.ttlMs);
      const dead = await registry.get("spw-a");
      assert.equal(dead?.state, "DEAD");
      assert.match(dead?.lastFailure ?? "", /No heartbeat for .* s \(TTL 0.3 s\)/);
      const history = await registry.history("spw-a");
      assert.deepEqual(history.map((t) => t.to), ["ALIVE", "SUSPECT", "DEAD"]);
    } finally {
      sweeper.stop();
    }
  });
});

Deno.test("startLivenessSweeper() declares nobody dead within one TTL of its start", async () => {
  await withRegistry(async (registry, clock) => {
    await registry.put(alive("spw-a", clock.now - 60_000), "up long ago");
    const settings = livenessSettings(100);
    const sweeper = startLivenessSweeper(registry, settings);
    try {
      clock.now += settings.ttlMs - 1;
      await sweeper.sweep();
      assert.equal((await registry.get("spw-a"))?.state, "ALIVE");
    } finally {
      sweeper.stop();
    }
  });
});

Deno.test("startLivenessSweeper() declares nobody dead after the registry itself was paused for 3 TTLs", async () => {
  await withRegistry(async (registry, clock) => {
    const settings = livenessSettings(100);
    const sweeper = startLivenessSweeper(registry, settings);
    const pass = async (ms: number, beating: string[] = []): Promise<void> => {
      for (let left = ms; left > 0; left -= 50) {
        clock.now += Math.min(50, left);
        for (const id of beating) await registry.heartbeat(id, 1);
        await sweeper.sweep();
      }
    };
    try {
      for (const id of ["spw-a", "spw-b"]) await registry.put(alive(id, clock.now), "up");
      await pass(settings.ttlMs + 1, ["spw-a", "spw-b"]);
      // SIGSTOP: no sweep and no heartbeat is handled for 3 TTLs.
      clock.now += 3 * settings.ttlMs;
      await sweeper.sweep();
      await pass(settings.ttlMs - 50);
      for (const id of ["spw-a", "spw-b"]) {
        assert.equal((await registry.get(id))?.state, "ALIVE", `${id} right after the pause`);
      }
      // The heartbeats held up during the pause arrive; spw-b has really died.
      await registry.heartbeat("spw-a", 1);
      await pass(settings.suspectMs + 10);
      assert.equal((await registry.get("spw-a"))?.state, "SUSPECT");
      assert.equal((await registry.get("spw-b"))?.state, "DEAD", "a full TTL after the pause");
      const history = await registry.history("spw-a");
      assert.ok(!history.some((t) => t.to === "DEAD"), JSON.stringify(history));
    } finally {
      sweeper.stop();
    }
  });
});

Deno.test("Registry.heartbeat() never revives a death its parent reported, nor by a beat sent before a death", async () => {
  await withRegistry(async (registry, clock) => {
    await registry.put({ ...alive("spw-a", clock.now), instance: "inst-a" }, "up");
    await registry.put({ ...alive("spw-b", clock.now), instance: "inst-b" }, "up");
    const sentBefore = clock.now;
    clock.now += 1000;
    await registry.transition("spw-a", {
      incarnation: 1,
      to: "DEAD",
      reason: "process exited with code 137",
      exited: true,
    });
    await registry.transition("spw-b", { incarnation: 1, to: "DEAD", reason: "No heartbeat" });
    clock.now += 1000;
    // Late beats, sent before the deaths, arrive now.
    await assert.rejects(
      () => registry.heartbeat("spw-a", 1, { instance: "inst-a", sentAt: sentBefore }),
      NotLiveError,
    );
    await assert.rejects(() => registry.heartbeat("spw-a", 1), NotLiveError);
    const late = await registry.heartbeat("spw-b", 1, { instance: "inst-b", sentAt: sentBefore });
    assert.equal(late.state, "DEAD");
    await assert.rejects(
      () => registry.heartbeat("spw-b", 1, { instance: "inst-other", sentAt: clock.now }),
      NotLiveError,
    );
    assert.equal((await registry.get("spw-a"))?.state, "DEAD");
    assert.equal((await registry.get("spw-b"))?.state, "DEAD");
    // A beat sent after a death by TTL, by the same instance: its link came back.
    const back = await registry.heartbeat("spw-b", 1, { instance: "inst-b", sentAt: clock.now });
    assert.equal(back.state, "ALIVE");
  });
});

Deno.test("Registry.heartbeat() takes a suspect service back to ALIVE", async () => {
  await withRegistry(async (registry) => {
    await registry.put(alive("spw-a", 1), "up");
    await registry.transition("spw-a", { incarnation: 1, to: "SUSPECT", reason: "silent" });
    const back = await registry.heartbeat("spw-a", 1);
    assert.equal(back.state, "ALIVE");
  });
});

Deno.test("Registry.feed() replays past changes and then follows new ones without gaps", async () => {
  await withRegistry(async (registry) => {
    await registry.put(alive("spw-a", 1), "first");
    const feed = registry.feed(0, 1 << 20);
    await registry.put(alive("spw-b", 2), "second");
    await registry.setSession("spw-b", "s1", true);
    const seen: RegistryEvent[] = [];
    for (let i = 0; i < 3; i++) seen.push((await feed.next())!.event);
    feed.close();
    await registry.put(alive("spw-c", 3), "after close");
    assert.equal(await feed.next(), null, "a closed feed hands out nothing");
    assert.deepEqual(seen.map((e) => [e.kind, e.record.id]), [
      ["transition", "spw-a"],
      ["transition", "spw-b"],
      ["sessions", "spw-b"],
    ]);
    assert.ok(seen[1]!.seq > seen[0]!.seq);
  });
});
