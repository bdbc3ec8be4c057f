/**
 * Against a running fabric: a malformed ID changes nothing (64), an unknown
 * one exits 1 at once in every command, `session open` registers nothing
 * when one named service is unknown, and `logs` of a stopped service reads
 * its log file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadFabricFile } from "../../src/config/fabric_file.ts";
import { runFabricd, spawnLocal, withLocalFabric } from "../e2e/_fabric.ts";

Deno.test("fabricd refuses malformed and unknown service IDs before it changes anything", async () => {
  await withLocalFabric(async (local, dir) => {
    const fabric = join(dir, "fabric.yaml");
    const run = (...args: string[]) => runFabricd([...args, "--fabric", fabric]);
    const queue = (await spawnLocal(local, "queue")).id;
    const spawner = local.spawner.id;
    const what = (out: { code: number; stdout: string; stderr: string }) =>
      `code ${out.code}\n${out.stdout}${out.stderr}`;

    // Item 1: the path is never normalized into another service's.
    let out = await run("revoke", `zz/../${queue}`);
    assert.equal(out.code, 64, what(out));
    assert.match(out.stderr, /Invalid service ID "zz\/\.\.\/que-/);
    assert.equal((await local.registry.get(queue))?.record.state, "ALIVE", "not revoked");

    // Item 2: an unknown queue fails at once, not after 60 s of retries.
    const started = Date.now();
    out = await runFabricd([
      "task",
      "submit",
      "--queue",
      "que-bogus",
      "--fabric",
      fabric,
      "--",
      "/bin/echo",
      "hi",
    ]);
    assert.equal(out.code, 1, what(out));
    assert.match(out.stderr, /No service "que-bogus" in the registry/);
    assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms`);

    // Item 3: nothing is registered when one named service is unknown.
    out = await run("session", "open", "s1", "--service", spawner, "--service", "nope");
    assert.equal(out.code, 1, what(out));
    assert.match(out.stderr, /No service "nope" in the registry/);
    assert.deepEqual((await local.registry.get(spawner))?.record.sessions, []);
    assert.ok(!(await loadFabricFile(fabric)).sessions.includes("s1"), "s1 not recorded");

    // Items 6 and 8: an unknown ID is exit 1 with the usual message.
    for (const args of [["events", "--service", "nope"], ["status", "--under", "nope"]]) {
      out = await run(...args);
      assert.equal(out.code, 1, `${args.join(" ")}: ${what(out)}`);
      assert.match(out.stderr, /No service "nope" in the registry/, args.join(" "));
    }

    // Item 6: logs takes the durations events takes.
    out = await run("logs", queue, "--since", "1d");
    assert.equal(out.code, 0, what(out));
    assert.match(out.stdout, /ALIVE/);

    // Item 7: a stopped service's log is read from DIR/logs/ID.log.
    out = await run("stop", queue);
    assert.equal(out.code, 0, what(out));
    out = await run("logs", queue);
    assert.equal(out.code, 0, what(out));
    assert.match(out.stderr, new RegExp(`${queue} is STOPPED: .*logs/${queue}\\.log`));
    assert.match(out.stdout, /ALIVE/);

    // Item 2: a queue that is stopped will not come back by itself: exit 1 at once.
    out = await runFabricd(["task", "submit", "--queue", queue, "--fabric", fabric, "--", "/x"]);
    assert.equal(out.code, 1, what(out));
    assert.match(out.stderr, /is STOPPED, not ALIVE/);
  });
});

Deno.test("fabricd pilot names --manager when the fabric has two pilot managers", async () => {
  await withLocalFabric(async (local, dir) => {
    for (let i = 0; i < 2; i++) await spawnLocal(local, "pilot-manager", { on: "local://" });
    const out = await runFabricd(["pilot", "list", "--fabric", join(dir, "fabric.yaml")]);
    assert.equal(out.code, 64, out.stderr);
    assert.match(out.stderr, /2 pilot-manager services: choose one with --manager ID/);
  });
});
