import assert from "node:assert/strict";
import { FabricClient } from "../../../src/client/fabric_client.ts";
import { RegistryClient } from "../../../src/client/registry_client.ts";
import { RemoteEventSink } from "../../../src/services/agent/_remote_events.ts";
import { ServiceTarget } from "../../../src/services/agent/_service_target.ts";
import { eventually } from "../../_eventually.ts";
import { keys, SERVICE, withServer } from "../pubsub/_served.ts";

Deno.test("RemoteEventSink.publish() resolves at once while the pub/sub is away, keeps the newest events and counts the dropped", async () => {
  const client = new FabricClient(keys, { timeoutMs: 500 });
  // Nothing listens on port 1: the registry, and so the pub/sub, cannot be reached.
  const registry = new RegistryClient(client, [{ id: "reg-00000001", url: "http://127.0.0.1:1" }]);
  const target = new ServiceTarget(registry, "pub-00000001", { retryMs: 50 });
  const life = new AbortController();
  const sink = new RemoteEventSink(keys, client, target, life.signal, {
    bufferEvents: 3,
    flushMs: 100,
  });
  try {
    for (let i = 0; i < 5; i++) {
      const answer = await Promise.race([
        sink.publish("tasks.tsk-1", { i }).then(() => "resolved"),
        new Promise((resolve) => setTimeout(() => resolve("waited"), 1000)),
      ]);
      assert.equal(answer, "resolved", `publish ${i} did not wait for the pub/sub`);
    }
    assert.equal(sink.buffered, 3);
    assert.equal(sink.dropped, 2);
    assert.throws(
      () => new RemoteEventSink(keys, client, target, life.signal, { bufferEvents: 0 }),
      RangeError,
    );
  } finally {
    await sink.close();
    life.abort();
  }
  assert.equal(sink.buffered, 0);
  assert.equal(sink.dropped, 5, "what was still buffered at close is counted as dropped");
});

Deno.test("RemoteEventSink holds each event for its linger, then sends the window's events together, in order", async () => {
  await withServer({}, async (served) => {
    const all = await served.follow([">"]);
    const life = new AbortController();
    const target = {
      get: () => Promise.resolve({ id: SERVICE, url: `http://127.0.0.1:${served.port}` }),
      forget: () => {},
    } as unknown as ServiceTarget;
    const client = new FabricClient(keys);
    const publish = served.broker.publish.bind(served.broker);
    const published: number[] = [];
    served.broker.publish = (topic, message) => {
      published.push(performance.now());
      return publish(topic, message);
    };
    const sink = new RemoteEventSink(keys, client, target, life.signal, { lingerMs: 100 });
    try {
      // The first event opens the socket; wait for its hello before timing a window.
      await sink.publish("tasks.t0", 0);
      await eventually(() => all.events.length === 1);
      const start = performance.now();
      for (let i = 1; i <= 5; i++) {
        await sink.publish(`tasks.t${i}`, i);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await eventually(() => all.events.length === 6, { what: "six events at the subscriber" });
      assert.deepEqual(all.events.map((e) => e.op === "message" ? e.message : e.op), [
        0,
        1,
        2,
        3,
        4,
        5,
      ]);
      // Published 10 ms apart, taken by the broker together (one batch frame, pubsub tests).
      const window = published.slice(1);
      assert.ok(window[0]! - start >= 90, "the first event waited for the linger");
      assert.ok(window[4]! - window[0]! < 5, `taken apart: ${window.map((t) => t - start)}`);
    } finally {
      await sink.close();
      life.abort();
    }
  });
});
