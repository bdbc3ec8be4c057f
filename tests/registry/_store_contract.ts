/**
 * The contract every registry store keeps (src/registry/store.ts), as one
 * suite run against each store: SQLite here, etcd in etcd_store_test.ts.
 */
import assert from "node:assert/strict";
import {
  InvalidTransitionError,
  NotEndedError,
  type RegistryStore,
  StaleIncarnationError,
  TooManySessionsError,
  UnknownServiceError,
} from "../../src/registry/store.ts";
import { MAX_SESSIONS } from "../../src/types/service_record.ts";
import { serviceRecord } from "../_fixtures.ts";

/** Opens a store; `reopen` opens the same data again after `close()`. */
export interface StoreFactory {
  open(): Promise<RegistryStore>;
  reopen(): Promise<RegistryStore>;
}

/** Runs every contract step against the stores `factory` makes. */
export async function storeContract(t: Deno.TestContext, factory: StoreFactory): Promise<void> {
  let store = await factory.open();
  try {
    await t.step("put() records the first state as a transition with its reason", async () => {
      const change = await store.put(
        serviceRecord("spw-c1", { state: "LAUNCHING", updated: 5 }),
        "spawned",
      );
      assert.equal(change.transition?.to, "LAUNCHING");
      assert.equal(change.transition?.reason, "spawned");
      const history = await store.history("spw-c1");
      assert.deepEqual(history.map((h) => [h.from, h.to, h.reason, h.at]), [[
        "",
        "LAUNCHING",
        "spawned",
        5,
      ]]);
    });

    await t.step(
      "transition() stores time and reason and refuses what the state machine forbids",
      async () => {
        await store.transition("spw-c1", {
          incarnation: 1,
          to: "BOOTSTRAPPING",
          reason: "keys",
          at: 6,
        });
        await assert.rejects(
          () => store.transition("spw-c1", { incarnation: 1, to: "LOST", reason: "x", at: 7 }),
          InvalidTransitionError,
        );
        await assert.rejects(
          () => store.transition("spw-nobody", { incarnation: 1, to: "ALIVE", reason: "x", at: 7 }),
          UnknownServiceError,
        );
        assert.equal((await store.get("spw-c1"))?.state, "BOOTSTRAPPING");
      },
    );

    await t.step("a stale incarnation can never overwrite a newer record", async () => {
      await store.put(serviceRecord("spw-c2", { incarnation: 3, host: "new" }), "restarted");
      await assert.rejects(
        () => store.put(serviceRecord("spw-c2", { incarnation: 2, host: "old" }), "late"),
        StaleIncarnationError,
      );
      await assert.rejects(
        () => store.transition("spw-c2", { incarnation: 2, to: "DEAD", reason: "late", at: 9 }),
        StaleIncarnationError,
      );
      await assert.rejects(() => store.heartbeat("spw-c2", 2, 9), StaleIncarnationError);
      const kept = await store.get("spw-c2");
      assert.equal(kept?.incarnation, 3);
      assert.equal(kept?.host, "new");
      assert.equal(kept?.state, "ALIVE");
    });

    await t.step(
      "heartbeat() moves lastHeartbeat forward for the current incarnation",
      async () => {
        const beat = await store.heartbeat("spw-c2", 3, 1_000);
        assert.ok(beat.lastHeartbeat >= 1_000);
      },
    );

    await t.step("setSession() adds and removes sessions without a transition", async () => {
      const before = (await store.history("spw-c2")).length;
      await store.setSession("spw-c2", "s1", true);
      await store.setSession("spw-c2", "s2", true);
      await store.setSession("spw-c2", "s1", false);
      assert.deepEqual((await store.get("spw-c2"))?.sessions, ["s2"]);
      assert.equal((await store.history("spw-c2")).length, before);
    });

    await t.step(
      "setSession() refuses a session past MAX_SESSIONS with 409 and changes nothing",
      async () => {
        const many = Array.from(
          { length: MAX_SESSIONS },
          (_, i) => `m${String(i).padStart(4, "0")}`,
        );
        const full = { ...(await store.get("spw-c2"))!, sessions: many };
        await store.put(full, "full");
        const error = await store.setSession("spw-c2", "one-more", true).then(
          () => assert.fail("a session past the limit was taken"),
          (e) => e,
        );
        assert.ok(error instanceof TooManySessionsError);
        assert.equal(error.httpStatus, 409);
        assert.equal((await store.get("spw-c2"))?.sessions.length, MAX_SESSIONS);
        await store.setSession("spw-c2", many[0]!, true); // one it serves already
        await store.setSession("spw-c2", many[0]!, false);
        assert.equal((await store.get("spw-c2"))?.sessions.length, MAX_SESSIONS - 1);
        await store.put({ ...full, sessions: ["s2"] }, "back");
      },
    );

    await t.step("live() lists only ALIVE and SUSPECT services", async () => {
      const live = (await store.live()).map((l) => l.id).sort();
      assert.deepEqual(live, ["spw-c2"]);
    });

    await t.step("transitionsSince() pages through changes in order with growing seq", async () => {
      const all = await store.transitionsSince(0, 100);
      assert.ok(all.length >= 3);
      for (let i = 1; i < all.length; i++) assert.ok(all[i]!.seq > all[i - 1]!.seq);
      const rest = await store.transitionsSince(all[0]!.seq, 100);
      assert.deepEqual(rest.map((t) => t.seq), all.slice(1).map((t) => t.seq));
      assert.equal((await store.transitionsSince(all[0]!.seq, 1)).length, 1);
    });

    await t.step(
      "records and transitions survive closing and opening the store again",
      async () => {
        await store.close();
        store = await factory.reopen();
        assert.equal((await store.get("spw-c1"))?.state, "BOOTSTRAPPING");
        assert.equal((await store.get("spw-c2"))?.incarnation, 3);
        assert.equal((await store.history("spw-c1")).length, 2);
        assert.deepEqual((await store.list()).map((r) => r.id).sort(), ["spw-c1", "spw-c2"]);
      },
    );

    await t.step(
      "transition() with exited marks a reported death, even of a DEAD record; the next incarnation clears it",
      async () => {
        await store.put(serviceRecord("spw-c3", { instance: "i-one" }), "up");
        const dead = await store.transition("spw-c3", {
          incarnation: 1,
          to: "DEAD",
          reason: "process exited with code 137",
          at: 20,
          exited: true,
        });
        assert.equal(dead.record.exited, true);
        assert.equal(dead.transition?.to, "DEAD");
        const restarting = await store.put(
          { ...dead.record, state: "RESTARTING", incarnation: 2 },
          "restarting",
        );
        assert.ok(!restarting.record.exited, "incarnation 2 did not die");
        assert.ok(!(await store.get("spw-c3"))?.exited);

        await store.put(serviceRecord("spw-c4"), "up");
        await store.transition("spw-c4", { incarnation: 1, to: "DEAD", reason: "ttl", at: 21 });
        assert.ok(!(await store.get("spw-c4"))?.exited, "a death by TTL is not an exit report");
        const before = (await store.history("spw-c4")).length;
        const reported = await store.transition("spw-c4", {
          incarnation: 1,
          to: "DEAD",
          reason: "process exited with code 9",
          at: 22,
          exited: true,
        });
        assert.equal(reported.transition, null);
        assert.equal(reported.record.exited, true);
        assert.equal((await store.history("spw-c4")).length, before);
        await store.close();
        store = await factory.reopen();
        assert.equal((await store.get("spw-c4"))?.exited, true);
        assert.equal((await store.get("spw-c3"))?.instance, "i-one");
      },
    );

    await t.step(
      "delete() removes only an ended record, with its transitions, and keeps its revocation",
      async () => {
        await assert.rejects(() => store.delete("spw-c1", 1000), NotEndedError);
        await assert.rejects(() => store.delete("spw-nobody", 1000), UnknownServiceError);
        assert.deepEqual(await store.keptRevocations(0), [], "a refused delete keeps nothing");
        assert.equal((await store.get("spw-c1"))?.state, "BOOTSTRAPPING");
        await store.transition("spw-c4", { incarnation: 1, to: "STOPPED", reason: "stop", at: 23 });
        const stopped = (await store.history("spw-c4")).at(-1)!.seq;
        const removed = await store.delete("spw-c4", 1000);
        assert.equal(removed.state, "STOPPED");
        assert.equal(await store.get("spw-c4"), undefined);
        assert.deepEqual(await store.history("spw-c4"), []);
        assert.ok((await store.transitionsSince(0, 1000)).every((tr) => tr.id !== "spw-c4"));
        await assert.rejects(() => store.delete("spw-c4", 1000), UnknownServiceError);
        assert.deepEqual(await store.keptRevocations(999), [{ id: "spw-c4", incarnation: 1 }]);
        // Its stop is gone from the changes: a reader that had not reached it gets it kept.
        assert.deepEqual(
          await store.keptRevocations(999, stopped - 1),
          [{ id: "spw-c4", incarnation: 1 }],
          "kept for a reader of the changes before its stop",
        );
        assert.deepEqual(await store.keptRevocations(999, 2 ** 40), [], "not for one past it");
        await store.close();
        store = await factory.reopen();
        assert.ok(!(await store.list()).some((r) => r.id === "spw-c4"));
        assert.equal((await store.get("spw-c1"))?.state, "BOOTSTRAPPING");
        assert.deepEqual(
          await store.keptRevocations(999),
          [{ id: "spw-c4", incarnation: 1 }],
          "kept across a restart",
        );
        assert.deepEqual(await store.keptRevocations(1000), [], "dropped once expired");
      },
    );
  } finally {
    await store.close();
  }
}
