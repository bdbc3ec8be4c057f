import assert from "node:assert/strict";
import { join } from "node:path";
import { FABRICD, runFabricd, withTempDir } from "./_fabric.ts";

Deno.test("fabricd init creates a 0600 key and refuses to overwrite without --force", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    const first = await runFabricd(["init", "--fabric", fabric]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal((await Deno.stat(join(dir, "fabric.key"))).mode! & 0o777, 0o600);
    const before = await Deno.readTextFile(fabric);
    const again = await runFabricd(["init", "--fabric", fabric]);
    assert.equal(again.code, 78);
    assert.match(again.stderr, /--force/);
    assert.equal(await Deno.readTextFile(fabric), before);
    const forced = await runFabricd(["init", "--fabric", fabric, "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(await Deno.readTextFile(fabric), before);
  });
});

Deno.test("fabricd reports a malformed fabric file with file, line and column and exit 65", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    await Deno.writeTextFile(fabric, "version: 1\nkey: fabric.key\nfingerprint: [broken\n");
    const out = await runFabricd(["status"], { env: { FABRIC_FILE: fabric } });
    assert.equal(out.code, 65);
    assert.match(out.stderr, new RegExp(`${fabric}:\\d+:\\d+: `));
    assert.doesNotMatch(out.stderr, /\n\s+at /, "no stack trace");
  });
});

Deno.test("fabricd refuses unknown roles and bad usage with exit 64", async () => {
  const bogus = await runFabricd(["--role", "wizard"]);
  assert.equal(bogus.code, 64);
  assert.match(bogus.stderr, /Unknown role "wizard"/);
  const unknown = await runFabricd(["frobnicate"]);
  assert.equal(unknown.code, 64);
  const badFlag = await runFabricd(["status", "--colour"]);
  assert.equal(badFlag.code, 64);
  assert.match(badFlag.stderr, /fabricd status --help/);
});

Deno.test("fabricd status without a fabric file says what to run and exits 78", async () => {
  await withTempDir(async (dir) => {
    const out = await runFabricd(["status"], { env: { HOME: dir } });
    assert.equal(out.code, 78);
    assert.match(out.stderr, /fabricd init/);
  });
});

Deno.test("fabricd up runs a fabric that spawn, status, session and stop drive, and Ctrl-C stops it all", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    const env = { FABRIC_FILE: fabric, HOME: dir };
    const up = new Deno.Command(FABRICD[0]!, {
      args: [...FABRICD.slice(1), "up", "--dir", dir, "--heartbeat-ms", "500"],
      stdout: "piped",
      stderr: "piped",
      env,
    }).spawn();
    const output = up.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("Press Ctrl-C")) {
      const { value, done } = await output.read();
      if (done) break;
      seen += value;
    }
    try {
      assert.match(seen, /is up/);
      const logs = [...Deno.readDirSync(join(dir, "logs"))].map((e) => join(dir, "logs", e.name));
      assert.equal(logs.length, 2, "the registry's and the root spawner's logs");
      for (const log of logs) assert.equal((await Deno.stat(log)).mode! & 0o777, 0o600, log);
      const spawned = await runFabricd(["spawn", "--role", "spawner", "--json"], { env });
      assert.equal(spawned.code, 0, spawned.stderr);
      const child = JSON.parse(spawned.stdout) as { id: string; state: string };
      assert.equal(child.state, "ALIVE");
      const grand = await runFabricd(["spawn", "--role", "spawner", "--via", child.id, "--json"], {
        env,
      });
      assert.equal(grand.code, 0, grand.stderr);
      const grandId = (JSON.parse(grand.stdout) as { id: string }).id;

      const status = await runFabricd(["status"], { env });
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`└─ ${grandId} +spawner +\\S+ +\\d+ +ALIVE`));

      const json = JSON.parse((await runFabricd(["status", "--json"], { env })).stdout);
      assert.equal(json.services.length, 4);

      const opened = await runFabricd(["session", "open", "s-42", "--service", child.id], { env });
      assert.equal(opened.code, 0, opened.stderr);
      const listed = await runFabricd(["session", "list"], { env });
      assert.match(listed.stdout, new RegExp(`s-42: ${child.id} \\(ALIVE\\)`));
      assert.match(await Deno.readTextFile(fabric), /- s-42/);
      const closed = await runFabricd(["session", "close", "s-42"], { env });
      assert.equal(closed.code, 0, closed.stderr);

      const stopOne = await runFabricd(["stop", grandId], { env });
      assert.equal(stopOne.code, 0, stopOne.stderr);
      const after = JSON.parse((await runFabricd(["status", "--json"], { env })).stdout);
      const grandRecord = after.services.find((r: { id: string }) => r.id === grandId);
      assert.equal(grandRecord.state, "STOPPED");

      const spawnBad = await runFabricd(["spawn", "--role", "spawner", "--on", "ftp://x"], { env });
      assert.equal(spawnBad.code, 64, "an unknown launcher is a usage error");
      assert.match(spawnBad.stderr, /Unknown launcher "ftp:\/\/"/);

      const pids: number[] = after.services.map((r: { pid: number }) => r.pid);
      up.kill("SIGINT");
      const status2 = await up.status;
      assert.equal(status2.code, 0);
      for (const pid of pids) {
        let gone = false;
        for (let i = 0; i < 100 && !gone; i++) {
          gone = !(await Deno.stat(`/proc/${pid}`).then(() => true, () => false));
          if (!gone) await new Promise((r) => setTimeout(r, 50));
        }
        assert.ok(gone, `process ${pid} is still running after Ctrl-C`);
      }
    } finally {
      try {
        up.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await up.status;
      await output.cancel().catch(() => {});
      await up.stderr.cancel().catch(() => {});
      const left = await runFabricd(["stop", "--all"], { env });
      assert.ok(left.code === 0 || left.code === 69, left.stderr);
    }
  });
});

Deno.test("fabricd demo runs its tour and exits 0", async () => {
  const out = await runFabricd(["demo"]);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /no process left behind/);
});
