/**
 * `init`, `up`, `spawn`, `connect` and `demo` take no positional argument: a
 * stray one is refused with 64 naming it, before anything is written or
 * started. `spawn`'s --count, --parallel and --option say what they accept.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { initFabric } from "../../src/cli/init.ts";
import { withTempDir } from "../e2e/_fabric.ts";
import { runGuarded } from "./_guarded_run.ts";

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("fabricd init refuses a stray argument with 64 and keeps the default fabric's key", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    await initFabric(fabric);
    const key = await Deno.readTextFile(join(dir, "fabric.key"));
    const yaml = await Deno.readTextFile(fabric);
    const out = await runGuarded(["init", join(dir, "other"), "--force"], {
      env: { FABRIC_FILE: fabric },
    });
    const what = `code ${out.code}\n${out.stdout}${out.stderr}`;
    assert.equal(out.code, 64, what);
    assert.match(out.stderr, /Unexpected ".*other": see "fabricd init --help"/, what);
    assert.equal(await Deno.readTextFile(join(dir, "fabric.key")), key, "the key is unchanged");
    assert.equal(await Deno.readTextFile(fabric), yaml, "the fabric file is unchanged");
    assert.ok(!(await exists(join(dir, "other"))), what);
  });
});

Deno.test("fabricd up, spawn, connect and demo refuse a stray argument with 64, starting nothing", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    await initFabric(fabric);
    const upDir = join(dir, "up");
    const cases: { args: string[]; stray: string; command: string }[] = [
      { args: ["up", "--dir", upDir, "stray"], stray: "stray", command: "up" },
      {
        args: ["spawn", "--role", "spawner", "stray", "--fabric", fabric],
        stray: "stray",
        command: "spawn",
      },
      {
        args: ["spawn", "--role", "spawner", "--fabric", fabric, "--", "x"],
        stray: "x",
        command: "spawn",
      },
      { args: ["connect", "stray", "--fabric", fabric], stray: "stray", command: "connect" },
      { args: ["demo", "stray"], stray: "stray", command: "demo" },
    ];
    // Every run ends (or is stopped) before any assertion: nothing outlives the test.
    const outs = await Promise.all(cases.map((c) => runGuarded(c.args)));
    cases.forEach((c, i) => {
      const out = outs[i]!;
      const what = `${c.args.join(" ")}: code ${out.code}\n${out.stdout}${out.stderr}`;
      assert.ok(!out.timedOut, what);
      assert.equal(out.code, 64, what);
      assert.match(
        out.stderr,
        new RegExp(`Unexpected "${c.stray}": see "fabricd ${c.command} --help"`),
        what,
      );
      assert.doesNotMatch(out.stdout, /Created fabric|is up|== fabricd init/, what);
    });
    assert.ok(!(await exists(upDir)), "up created nothing");
  });
});

Deno.test("fabricd spawn names the accepted range of --count and --parallel and refuses a repeated --option", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    await initFabric(fabric);
    const cases: { flags: string[]; stderr: RegExp }[] = [
      {
        flags: ["--count", "-1"],
        stderr: /Invalid --count "-1": give a whole number from 1 to 1000$/m,
      },
      {
        flags: ["--count", "abc"],
        stderr: /Invalid --count "abc": give a whole number from 1 to 1000$/m,
      },
      {
        flags: ["--count", "0"],
        stderr: /Invalid --count "0": give a whole number from 1 to 1000$/m,
      },
      {
        flags: ["--parallel", "x"],
        stderr: /Invalid --parallel "x": give a whole number from 1 to 64$/m,
      },
      {
        flags: ["--option", "capacity=10", "--option", "capacity=20"],
        stderr:
          /Repeated --option "capacity" \("capacity=10", then "capacity=20"\): give each key once/,
      },
    ];
    const outs = await Promise.all(
      cases.map((c) => runGuarded(["spawn", "--role", "queue", ...c.flags, "--fabric", fabric])),
    );
    cases.forEach((c, i) => {
      const out = outs[i]!;
      const what = `${c.flags.join(" ")}: code ${out.code}\n${out.stdout}${out.stderr}`;
      assert.equal(out.code, 64, what);
      assert.match(out.stderr, c.stderr, what);
    });
  });
});
