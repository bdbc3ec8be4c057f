import assert from "node:assert/strict";
import { FabricClient } from "../../../src/client/fabric_client.ts";
import { RegistryClient } from "../../../src/client/registry_client.ts";
import { generateFabricKeys } from "../../../src/crypto/keys.ts";
import { RemoteEventSink } from "../../../src/services/agent/_remote_events.ts";
import { ServiceTarget } from "../../../src/services/agent/_service_target.ts";

Deno.test("RemoteEventSink.publish() resolves at once while the pub/sub is away, keeps the newest events and counts the dropped", async () => {
  const keys = await generateFabricKeys();
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
