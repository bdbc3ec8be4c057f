/**
 * `fabricd events -f` against a local fabric of real processes (issue 13):
 * a SIGKILLed service's transitions appear in the order they happened.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { SpawnResult } from "../../src/types/mod.ts";
import { FABRICD, killQuietly, withLocalFabric } from "./_fabric.ts";
import { eventually } from "../_eventually.ts";
import { parseDuration } from "../../src/cli/events.ts";

Deno.test("fabricd events -f prints a SIGKILLed service's DEAD, RESTARTING and ALIVE incarnation 2 in order", async () => {
  await withLocalFabric(async (local, dir) => {
    const spawned = await local.client.call<SpawnResult>(local.spawner, {
      method: "POST",
      path: "/v1/spawn",
      body: { role: "spawner" },
    });
    const record = (await local.registry.get(spawned.id))!.record;
    const child = new Deno.Command(FABRICD[0]!, {
      args: [
        ...FABRICD.slice(1),
        "events",
        "-f",
        "--json",
        "--service",
        spawned.id,
        "--fabric",
        join(dir, "fabric.yaml"),
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const lines: { to: string; incarnation: number; from: string }[] = [];
    const reading = (async () => {
      let buffer = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf("\n")) >= 0) {
          lines.push(JSON.parse(buffer.slice(0, end)));
          buffer = buffer.slice(end + 1);
        }
      }
    })();
    try {
      await eventually(
        () => lines.some((l) => l.to === "ALIVE"),
        { timeoutMs: 30_000 },
      );
      killQuietly(record.pid);
      await eventually(
        () => lines.some((l) => l.to === "ALIVE" && l.incarnation === 2),
        { timeoutMs: 60_000 },
      );
      const moves = lines.map((l) => `${l.incarnation}:${l.to}`);
      const at = (move: string): number => moves.indexOf(move);
      assert.ok(at("1:ALIVE") >= 0, moves.join(" "));
      assert.ok(at("1:DEAD") > at("1:ALIVE"), moves.join(" "));
      const restarting = moves.findIndex((m) => m.endsWith(":RESTARTING"));
      assert.ok(restarting > at("1:DEAD"), moves.join(" "));
      assert.ok(at("2:ALIVE") > restarting, moves.join(" "));
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await reading.catch(() => {});
    }
  }, { heartbeatMs: 500 });
});

Deno.test("parseDuration() reads s, m, h and d and refuses anything else", () => {
  assert.equal(parseDuration("90s"), 90_000);
  assert.equal(parseDuration("10m"), 600_000);
  assert.equal(parseDuration("2h"), 7_200_000);
  assert.equal(parseDuration("1d"), 86_400_000);
  assert.throws(() => parseDuration("10 minutes"), /Invalid --since/);
});
