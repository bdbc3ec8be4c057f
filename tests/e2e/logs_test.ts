/**
 * `fabricd logs` against a local fabric of real processes (issue 12, item 6):
 * a service's log is read through its signed `GET /v1/logs`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { SpawnResult } from "../../src/types/mod.ts";
import { FABRICD, runFabricd, withLocalFabric } from "./_fabric.ts";
import { eventually } from "../_eventually.ts";

Deno.test("fabricd logs ID shows the service's startup line; -f prints a line logged later", async () => {
  await withLocalFabric(async (local, dir) => {
    const fabric = join(dir, "fabric.yaml");
    const spawned = await local.client.call<SpawnResult>(local.spawner, {
      method: "POST",
      path: "/v1/spawn",
      body: { role: "spawner" },
    });
    const shown = await runFabricd(["logs", spawned.id, "--fabric", fabric]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /Bootstrapped from .*, configured by its answer/);
    const recent = await runFabricd(["logs", spawned.id, "--since", "1h", "--fabric", fabric]);
    assert.equal(recent.stdout, shown.stdout, "every line is younger than an hour");

    const follower = new Deno.Command(FABRICD[0]!, {
      args: [...FABRICD.slice(1), "logs", spawned.id, "-f", "--fabric", fabric],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    let seen = "";
    const reading = (async () => {
      for await (const chunk of follower.stdout.pipeThrough(new TextDecoderStream())) {
        seen += chunk;
      }
    })();
    try {
      await eventually(() => /is ALIVE as/.test(seen), { timeoutMs: 15_000 });
      // A line the service logs later: why it stops.
      const before = seen.length;
      await local.client.call(
        { id: spawned.id, url: spawned.endpoint },
        { method: "POST", path: "/v1/stop", body: { reason: "logs test is done" } },
      );
      await eventually(() => /logs test is done/.test(seen.slice(before)), { timeoutMs: 15_000 });
      assert.equal((await follower.status).code, 0, "the stream ends when the service stops");
    } finally {
      try {
        follower.kill("SIGTERM");
      } catch {
        // Ended with the service's stream.
      }
      await follower.status;
      await reading;
    }
  });
});

Deno.test("fabricd logs refuses a missing ID with exit 64", async () => {
  const answer = await runFabricd(["logs"]);
  assert.equal(answer.code, 64);
  assert.match(answer.stderr, /Give the ID of a service/);
});
