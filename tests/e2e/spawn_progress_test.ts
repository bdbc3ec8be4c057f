/**
 * The streamed `POST /v1/spawn` against a local fabric of real processes
 * (issue 12, item 6): the steps come as `progress` events, then the result.
 */
import assert from "node:assert/strict";
import { FabricRequestError } from "../../src/client/fabric_client.ts";
import { spawnWithProgress } from "../../src/cli/spawn_progress.ts";
import type { SpawnResult } from "../../src/types/mod.ts";
import type { SpawnProgress } from "../../src/types/spawn_progress.ts";
import { withLocalFabric } from "./_fabric.ts";

Deno.test("POST /v1/spawn streamed over local:// reports launch, bootstrap, configure, then an ALIVE result", async () => {
  await withLocalFabric(async (local) => {
    const events: { event: string; data: string }[] = [];
    const ended = new AbortController();
    const timer = setTimeout(() => ended.abort(), 60_000);
    try {
      await local.client.stream(
        local.spawner,
        "/v1/spawn",
        (event) => events.push(event),
        ended.signal,
        { method: "POST", body: { role: "spawner" } },
      );
    } finally {
      clearTimeout(timer);
    }
    const names = events.map((e) => e.event);
    assert.equal(names.at(-1), "result", `events: ${names.join(", ")}`);
    const steps = events.filter((e) => e.event === "progress")
      .map((e) => (JSON.parse(e.data) as SpawnProgress).step);
    const order = (["launch", "bootstrap", "configure"] as const).map((step) =>
      steps.indexOf(step)
    );
    assert.ok(order.every((at) => at >= 0), `steps: ${steps.join(", ")}`);
    assert.deepEqual(order, [...order].sort((a, b) => a - b), `steps: ${steps.join(", ")}`);
    const result = JSON.parse(events.at(-1)!.data) as SpawnResult;
    assert.equal(result.state, "ALIVE");
    const found = await local.registry.get(result.id);
    assert.equal(found?.record.state, "ALIVE");
    assert.equal(found?.record.parent, local.spawner.id);
  });
});

Deno.test("spawnWithProgress() prints each step and returns the result; a refused spawn throws its status", async () => {
  await withLocalFabric(async (local) => {
    let shown = "";
    const result = await spawnWithProgress(local.client, local.spawner, {
      body: { role: "spawner" },
      write: (text) => shown += text,
      terminal: false,
    });
    assert.equal(result.state, "ALIVE");
    assert.match(shown, new RegExp(`^launch ${result.id}$`, "m"));
    assert.match(shown, new RegExp(`^bootstrap ${result.id}$`, "m"));
    assert.match(shown, /^configure http:\/\/127\.0\.0\.1:\d+$/m);

    await assert.rejects(
      spawnWithProgress(local.client, local.spawner, {
        body: { role: "spawner", on: "ftp://nowhere" },
        write: () => {},
        terminal: false,
      }),
      (error) => error instanceof FabricRequestError && error.status === 400,
    );
  });
});
