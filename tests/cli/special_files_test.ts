/**
 * A fabric file or key file that is a FIFO, a directory or far too large is
 * refused at once with 65 and a message saying what it is; never a hang, a
 * whole read of a huge file or a `chmod` for a directory. An alias bomb in
 * the fabric file is refused with 65 too.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { initFabric } from "../../src/cli/init.ts";
import { withTempDir } from "../e2e/_fabric.ts";
import { runGuarded } from "./_guarded_run.ts";

async function mkfifo(path: string): Promise<void> {
  const out = await new Deno.Command("mkfifo", { args: ["-m", "600", path] }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
}

/** A sparse file of `size` bytes, mode 0600. */
async function sparse(path: string, size: number): Promise<void> {
  await Deno.writeFile(path, new Uint8Array(), { mode: 0o600 });
  await Deno.truncate(path, size);
}

/** A copy of the fabric file `fabric` whose key file is `key`. */
async function fabricWithKey(fabric: string, key: string): Promise<string> {
  const text = await Deno.readTextFile(fabric);
  const other = `${key}.fabric.yaml`;
  await Deno.writeTextFile(other, text.replace(/^key: .*$/m, `key: ${key}`));
  return other;
}

/**
 * Runs `fabricd` with each case's arguments, all at once, and checks that each
 * exits 65 at once with its message. Every run ends (or is stopped by the time
 * limit) before any assertion, so nothing outlives the test.
 */
async function refused(cases: [args: string[], stderr: RegExp][]): Promise<void> {
  const outs = await Promise.all(cases.map(([args]) => runGuarded(args)));
  cases.forEach(([args, stderr], i) => {
    const out = outs[i]!;
    const what = `${args.join(" ")}: code ${out.code}${
      out.timedOut ? " (timed out)" : ""
    }\n${out.stdout}${out.stderr}`;
    assert.ok(!out.timedOut, what);
    assert.equal(out.code, 65, what);
    assert.match(out.stderr, stderr, what);
    assert.doesNotMatch(out.stderr, /Unexpected error|chmod/, what);
  });
}

Deno.test("fabricd refuses a fabric file that is a FIFO, a directory or over 1 MiB with 65, at once", async () => {
  await withTempDir(async (dir) => {
    const fifo = join(dir, "fifo.yaml");
    await mkfifo(fifo);
    const folder = join(dir, "folder.yaml");
    await Deno.mkdir(folder);
    const big = join(dir, "big.yaml");
    await sparse(big, 1024 * 1024 + 1);
    const up = join(dir, "up");
    await refused([
      ...[["spawn", "--role", "spawner"], ["connect"], ["up", "--dir", up], ["status"]].map((
        command,
      ): [string[], RegExp] => [
        [...command, "--fabric", fifo],
        /Fabric file ".*fifo\.yaml" is not a regular file \(a FIFO\): give the fabric file itself/,
      ]),
      [
        ["spawn", "--role", "spawner", "--fabric", folder],
        /Fabric file ".*folder\.yaml" is a directory: give the fabric file itself, e\.g\. --fabric ".*folder\.yaml\/fabric\.yaml"/,
      ],
      [
        ["spawn", "--role", "spawner", "--fabric", big],
        /Fabric file ".*big\.yaml" is larger than 1 MiB/,
      ],
    ]);
  });
});

Deno.test("fabricd refuses a key file that is a FIFO, a directory or over 64 KiB with 65, at once", async () => {
  await withTempDir(async (dir) => {
    const fifo = join(dir, "fifo.key");
    await mkfifo(fifo);
    const folder = join(dir, "folder.key");
    await Deno.mkdir(folder, { mode: 0o755 });
    await Deno.chmod(folder, 0o755);
    const big = join(dir, "big.key");
    await sparse(big, 64 * 1024 + 1);
    const fabric = join(dir, "fabric.yaml");
    await initFabric(fabric);
    const spawn = async (key: string): Promise<string[]> => [
      "spawn",
      "--role",
      "spawner",
      "--fabric",
      await fabricWithKey(fabric, key),
    ];
    await refused([
      [
        await spawn(fifo),
        /Key file ".*fifo\.key" is not a regular file \(a FIFO\): give the right key path/,
      ],
      [await spawn(folder), /Key file ".*folder\.key" is a directory: give the right key path/],
      [await spawn(big), /Key file ".*big\.key" is larger than 64 KiB/],
    ]);
  });
});

Deno.test("fabricd refuses a YAML alias bomb in the fabric file with 65", async () => {
  await withTempDir(async (dir) => {
    const lines = [`a0: &a0 [${Array(9).fill("x").join(", ")}]`];
    for (let i = 1; i < 10; i++) {
      lines.push(`a${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(", ")}]`);
    }
    const fabric = join(dir, "fabric.yaml");
    await Deno.writeTextFile(fabric, `${lines.join("\n")}\n`);
    await refused([[
      ["spawn", "--role", "spawner", "--fabric", fabric],
      /fabric\.yaml: cannot expand its YAML \(Excessive alias count.*\): a fabric file needs no anchors or aliases/,
    ]]);
  });
});
