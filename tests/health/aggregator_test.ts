import assert from "node:assert/strict";
import { HTTPException } from "hono/http-exception";
import { aggregatorRoutes, HeartbeatAggregator } from "../../src/health/aggregator.ts";
import type { RegistryClient } from "../../src/client/registry_client.ts";
import type { BeatVerdict, HeartbeatBatch } from "../../src/types/wire.ts";

/** A registry that records each batch and answers by `verdictOf`. */
function fakeRegistry(verdictOf: (id: string) => BeatVerdict["result"] = () => "ok") {
  const batches: HeartbeatBatch[] = [];
  const client = {
    heartbeatMany(
      via: string,
      beats: HeartbeatBatch["beats"],
    ): Promise<{ results: BeatVerdict[] }> {
      batches.push({ via, beats });
      return Promise.resolve(beats.map((b): BeatVerdict => {
        const result = verdictOf(b.id);
        return result === "ok"
          ? { id: b.id, result, state: "ALIVE", incarnation: b.incarnation }
          : { id: b.id, result, message: `${b.id} ${result}` };
      })).then((results) => ({ results }));
    },
  };
  return { batches, client: client as unknown as RegistryClient };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("HeartbeatAggregator.beat() sends many children's beats up as one batch", async () => {
  const { batches, client } = fakeRegistry();
  const aggregator = new HeartbeatAggregator(client, { via: "brg-a" });
  try {
    const first = await Promise.all(
      ["agt-1", "agt-2", "agt-3"].map((id) =>
        aggregator.beat({ id, incarnation: 1, instance: "i", intervalMs: 200 })
      ),
    );
    assert.deepEqual(first.map((v) => v.result), ["ok", "ok", "ok"]);
    assert.equal(batches.length, 1, "new children wait for one shared batch");
    assert.equal(batches[0]!.via, "brg-a");
    assert.deepEqual(batches[0]!.beats.map((b) => b.id), ["agt-1", "agt-2", "agt-3"]);
    assert.equal("intervalMs" in batches[0]!.beats[0]!, false);
    // Known children are answered at once and sent within a quarter interval.
    const began = performance.now();
    for (const id of ["agt-1", "agt-2", "agt-3"]) {
      await aggregator.beat({ id, incarnation: 1, instance: "i", intervalMs: 200 });
    }
    assert.ok(performance.now() - began < 20, "a trusted beat does not wait for its batch");
    await sleep(80);
    assert.equal(batches.length, 2);
    assert.equal(batches[1]!.beats.length, 3);
  } finally {
    await aggregator.stop();
  }
});

Deno.test("HeartbeatAggregator.beat() relays a replaced verdict on the child's next beat", async () => {
  let replaced = false;
  const { client } = fakeRegistry((id) => id === "agt-1" && replaced ? "replaced" : "ok");
  const aggregator = new HeartbeatAggregator(client, { via: "brg-a" });
  try {
    const beat = { id: "agt-1", incarnation: 1, instance: "i", intervalMs: 100 };
    assert.equal((await aggregator.beat(beat)).result, "ok");
    replaced = true;
    assert.equal((await aggregator.beat(beat)).result, "ok", "the verdict comes with its batch");
    await sleep(60);
    assert.equal((await aggregator.beat(beat)).result, "replaced");
  } finally {
    await aggregator.stop();
  }
});

Deno.test("HeartbeatAggregator.beat() asks at once for a new instance or a child back from silence", async () => {
  const { batches, client } = fakeRegistry((id) => id === "agt-1" ? "ok" : "unknown");
  const aggregator = new HeartbeatAggregator(client, { via: "brg-a" });
  try {
    await aggregator.beat({ id: "agt-1", incarnation: 1, instance: "a", intervalMs: 50 });
    const other = await aggregator.beat({
      id: "agt-1",
      incarnation: 1,
      instance: "b",
      intervalMs: 50,
    });
    assert.equal(other.result, "ok");
    assert.equal(batches.length, 2, "another instance is not vouched for");
    await sleep(100); // silent for two intervals
    await aggregator.beat({ id: "agt-1", incarnation: 1, instance: "b", intervalMs: 50 });
    assert.equal(batches.length, 3);
    assert.equal((await aggregator.beat({ id: "agt-x", incarnation: 1 })).result, "unknown");
  } finally {
    await aggregator.stop();
  }
});

Deno.test("aggregatorRoutes() answers 409 for a replaced child and 502 when the registry is away", async () => {
  const { client } = fakeRegistry(() => "replaced");
  const aggregator = new HeartbeatAggregator(client, { via: "brg-a" });
  const broken = new HeartbeatAggregator({
    heartbeatMany: () => Promise.reject(new Error("connection refused")),
  } as unknown as RegistryClient, { via: "brg-b" });
  try {
    const post = (agg: HeartbeatAggregator) =>
      aggregatorRoutes(agg).request("/heartbeats", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id: "agt-1", incarnation: 1, sentAt: 1 }),
      });
    assert.equal((await post(aggregator)).status, 409);
    assert.equal((await post(broken)).status, 502);
  } finally {
    await aggregator.stop();
    await broken.stop();
  }
});

Deno.test("HeartbeatAggregator.beat() refuses beats once stopped", async () => {
  const { client } = fakeRegistry();
  const aggregator = new HeartbeatAggregator(client, { via: "brg-a" });
  await aggregator.stop();
  assert.throws(() => aggregator.beat({ id: "agt-1", incarnation: 1 }), HTTPException);
});
