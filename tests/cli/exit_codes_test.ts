/**
 * The README's exit code table, case by case (issue 12, items 5 and 6): each
 * command line runs the real fabricd against a fabric (running, or not) and
 * must exit with the documented code and a message that says what to do.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stoppedFabric } from "./_stopped_fabric.ts";
import { loadFabricFile, saveFabricFile } from "../../src/config/fabric_file.ts";
import { initFabric } from "../../src/cli/init.ts";
import { runFabricd, withLocalFabric, withTempDir } from "../e2e/_fabric.ts";

interface Case {
  name: string;
  args: (fabric: string) => string[];
  code: number;
  stderr?: RegExp;
  stdout?: RegExp;
  /** What the message must not say. */
  not?: RegExp;
}

async function check(c: Case, fabric: string): Promise<void> {
  const out = await runFabricd(c.args(fabric));
  const what = `${c.name}: code ${out.code}\n${out.stdout}\n${out.stderr}`;
  assert.equal(out.code, c.code, what);
  if (c.stderr) assert.match(out.stderr, c.stderr, what);
  if (c.stdout) assert.match(out.stdout, c.stdout, what);
  if (c.not) assert.doesNotMatch(out.stdout + out.stderr, c.not, what);
}

const WITHOUT_A_RUNNING_FABRIC: Case[] = [
  {
    name: "an unknown flag is named plainly",
    args: (f) => ["status", "--bogus", "--fabric", f],
    code: 64,
    stderr: /^fabricd: Unknown flag "--bogus": see "fabricd status --help"\n$/,
  },
  {
    name: "a flag without its value",
    args: () => ["status", "--fabric"],
    code: 64,
    stderr: /Flag "--fabric" needs a value/,
  },
  {
    name: "a misspelt role option lists the valid ones",
    args: (f) => [
      "spawn",
      "--role",
      "agent",
      "--option",
      "core=4",
      "--option",
      "queue=que-1",
      "--option",
      "pubsub=pub-1",
      "--fabric",
      f,
    ],
    code: 64,
    stderr: /unknown option "core"[\s\S]*cores=integer 1-4096/,
  },
  {
    name: "an agent without its queue",
    args: (f) => ["spawn", "--role", "agent", "--option", "pubsub=pub-1", "--fabric", f],
    code: 64,
    stderr: /option "queue" is required/,
  },
  {
    name: "spawn --role agent --help prints the agent's options",
    args: () => ["spawn", "--role", "agent", "--help"],
    code: 0,
    stdout: /visibilityMs=integer ms, 1000-\d+[\s\S]*graceMs=integer ms, 0-600000 .*default: 10000/,
  },
  {
    name: "session open without --service",
    args: (f) => ["session", "open", "s-1", "--fabric", f],
    code: 64,
    stderr: /--service ID/,
  },
  {
    name: "stop --only with --all",
    args: (f) => ["stop", "--all", "--only", "--fabric", f],
    code: 64,
    stderr: /--only names services/,
  },
  {
    name: "a bad --grace",
    args: (f) => ["stop", "--all", "--grace", "soon", "--fabric", f],
    code: 64,
    stderr: /Invalid --grace "soon"/,
  },
  {
    name: "an unreachable registry says to start the fabric",
    args: (f) => ["status", "--fabric", f],
    code: 69,
    stderr: /start the fabric with "fabricd up"/,
  },
  {
    name: "a spawn whose spawner does not answer",
    args: (f) => ["spawn", "--role", "spawner", "--fabric", f],
    code: 69,
    stderr: /Cannot reach service "spw-0000dead".*start the fabric with "fabricd up"/,
  },
];

Deno.test("fabricd exits as the README's table says when the fabric is not running", async () => {
  await withTempDir(async (dir) => {
    const fabric = await stoppedFabric(dir);
    for (const c of WITHOUT_A_RUNNING_FABRIC) await check(c, fabric);
  });
});

Deno.test("fabricd refuses a key file readable by group or others with 78 and the chmod that fixes it", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    await initFabric(fabric);
    const key = join(dir, "fabric.key");
    assert.equal((await Deno.stat(key)).mode! & 0o777, 0o600, "init writes the key 0600");
    for (const mode of [0o640, 0o604, 0o666]) {
      await Deno.chmod(key, mode);
      for (const args of [["status"], ["connect"], ["up", "--dir", dir]]) {
        await check({
          name: `${args[0]} with a ${mode.toString(8)} key`,
          args: (f) => [...args, "--fabric", f],
          code: 78,
          stderr: new RegExp(`run chmod 600 "${key}"`),
        }, fabric);
      }
    }
    await Deno.chmod(key, 0o600);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "fabric.key",
      "fabric.yaml",
    ], "up started nothing");
  });
});

Deno.test("fabricd reports corrupt YAML with 65 and never advises init --force", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    await Deno.writeTextFile(fabric, "version: 1\nregistries: [\n");
    await check({
      name: "corrupt YAML",
      args: (f) => ["status", "--fabric", f],
      code: 65,
      stderr: /fabric\.yaml:\d+:\d+: .*fix the YAML/,
      not: /init --force/,
    }, fabric);
  });
});

const WITH_A_RUNNING_FABRIC: Case[] = [
  {
    name: "an unknown launcher",
    args: (f) => ["spawn", "--role", "spawner", "--on", "ftp://x", "--fabric", f],
    code: 64,
    stderr: /Unknown launcher "ftp:\/\/"/,
  },
  {
    name: "session close of a session nobody knows",
    args: (f) => ["session", "close", "nope", "--fabric", f],
    code: 1,
    stderr: /No session "nope".*fabricd session list/,
    not: /Closed/,
  },
  {
    name: "connect to a session nobody serves",
    args: (f) => ["connect", "--session", "nope", "--fabric", f],
    code: 1,
    stderr: /No service serves session "nope"/,
  },
  {
    name: "stop of an unknown service",
    args: (f) => ["stop", "spw-00000000", "--fabric", f],
    code: 1,
    stderr: /No service "spw-00000000"/,
  },
];

Deno.test("fabricd exits as the README's table says against a running fabric", async () => {
  await withLocalFabric(async (local, dir) => {
    const fabric = join(dir, "fabric.yaml");
    const before = (await local.registry.list()).length;
    for (const c of WITH_A_RUNNING_FABRIC) await check(c, fabric);
    assert.equal((await local.registry.list()).length, before, "nothing was spawned");
  });
});

Deno.test("fabricd up refuses with 79 when the registry store of a fabric that ran before is gone, and starts nothing", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    await initFabric(fabric);
    // The fabric ran before: its file names its registry, whose store has since been deleted.
    const file = await loadFabricFile(fabric);
    await saveFabricFile(fabric, {
      ...file,
      registries: [{ id: "reg-0000aaaa", url: "http://127.0.0.1:1" }],
      dir,
    });
    await check({
      name: "up without the registry's store",
      args: (f) => ["up", "--dir", dir, "--fabric", f],
      code: 79,
      stderr: /Registry store ".*registry\.db" is gone: .*Restore the file/,
    }, fabric);
    assert.ok(
      ![...Deno.readDirSync(dir)].some((e) => e.name.startsWith("registry")),
      "no empty store was made",
    );
  });
});
