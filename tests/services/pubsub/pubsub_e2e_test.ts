import assert from "node:assert/strict";
import { PubsubClient, type PubsubEvent } from "../../../src/services/pubsub/mod.ts";
import type { SpawnResult } from "../../../src/types/mod.ts";
import { withLocalFabric } from "../../e2e/_fabric.ts";
import { eventually } from "../../_eventually.ts";

Deno.test("a pubsub service spawned in a local fabric takes a signed subscription and delivers publishes", async () => {
  await withLocalFabric(async (local) => {
    const spawned = await local.client.call<SpawnResult>(local.spawner, {
      method: "POST",
      path: "/v1/spawn",
      body: { role: "pubsub", options: { buffer: "256" } },
    });
    assert.equal(spawned.state, "ALIVE");
    const found = await local.registry.get(spawned.id);
    assert.equal(found?.record.role, "pubsub");
    const target = { id: spawned.id, url: spawned.endpoint };
    const pubsub = new PubsubClient(local.keys, target, { client: local.client });
    const subscription = await pubsub.subscribe(["tasks.*.done"]);
    try {
      const events: PubsubEvent[] = [];
      const reading = (async () => {
        for await (const event of subscription) {
          events.push(event);
          if (events.length === 3) break;
        }
      })();
      assert.deepEqual(await pubsub.publish("tasks.agt-1.done", { exit: 0 }), {
        delivered: 1,
        seq: 1,
      });
      assert.deepEqual(await pubsub.publish("tasks.agt-1.started", {}), { delivered: 0, seq: 1 });
      subscription.publish("tasks.agt-2.done", { exit: 1 });
      // The WebSocket and HTTP publishes travel on different connections.
      await eventually(() => events.length === 2);
      assert.deepEqual(await pubsub.publish("tasks.agt-1.done", { exit: 2 }), {
        delivered: 1,
        seq: 2,
      });
      await reading;
      assert.deepEqual(events, [
        { op: "message", topic: "tasks.agt-1.done", seq: 1, message: { exit: 0 } },
        { op: "message", topic: "tasks.agt-2.done", seq: 1, message: { exit: 1 } },
        { op: "message", topic: "tasks.agt-1.done", seq: 2, message: { exit: 2 } },
      ]);
      const stats = await pubsub.stats();
      assert.equal(stats.published, 4);
      assert.equal(stats.dropped, 0);
    } finally {
      await subscription.close();
    }
    // A stopping service tells its subscribers to go away (1001).
    const again = await pubsub.subscribe([">"]);
    await local.client.call(target, { method: "POST", path: "/v1/stop", body: {} });
    const closed = await again.closed;
    assert.equal(closed.code, 1001);
  });
});
