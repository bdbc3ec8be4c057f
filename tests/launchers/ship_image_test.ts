/**
 * shipImage() against a stand-in for SSH: an `ssh` first in `PATH` that runs
 * the remote command with the local `sh` and a temporary `$HOME` (and hands
 * any other use to the real ssh). So the host's script and the way this side
 * reads how it ended are tested together, without a host.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { imageOf, type SelfImage } from "../../src/image/image_dir.ts";
import { ImageShipError, shipImage } from "../../src/launchers/ship_image.ts";
import type { SshConnection } from "../../src/launchers/ssh_connection.ts";
import { fakeImage, removeTree } from "./_fake_image.ts";

const HOST = "fakehost";

/**
 * Runs `fn` with a host whose `$HOME` is `dir/home`: the stand-in `ssh` is
 * first in this process's `PATH` meanwhile (feed() runs `ssh` by name).
 */
async function withFakeHost<T>(
  dir: string,
  fn: (ssh: SshConnection, cache: string) => Promise<T>,
): Promise<T> {
  const home = join(dir, "home");
  const bin = join(dir, "bin");
  await Deno.mkdir(home);
  await Deno.mkdir(bin);
  await Deno.writeTextFile(
    join(bin, "ssh"),
    [
      "#!/bin/sh",
      'if [ "$1" = --fake-host ]; then HOME=$2; export HOME; exec sh -c "$3"; fi',
      'PATH=${PATH#*:} exec ssh "$@"',
    ].join("\n") + "\n",
    { mode: 0o755 },
  );
  const ssh = {
    target: { host: HOST },
    commandArgs: (command: string) => Promise.resolve(["--fake-host", home, command]),
    exec: async (command: string) => {
      const out = await new Deno.Command(join(bin, "ssh"), {
        args: ["--fake-host", home, command],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder();
      return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
    },
    close: () => Promise.resolve(),
  } as unknown as SshConnection;
  const path = Deno.env.get("PATH") ?? "";
  Deno.env.set("PATH", `${bin}:${path}`);
  try {
    return await fn(ssh, join(home, ".cache", "fabricd"));
  } finally {
    Deno.env.set("PATH", path);
  }
}

/** The names in `dir`, sorted. */
async function listing(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

async function withImage(
  spoilPacked: boolean,
  fn: (image: SelfImage, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fabricd-test-" });
  try {
    await fn(await fakeImage(dir, true, { spoilPacked }), dir);
  } finally {
    await removeTree(dir);
  }
}

Deno.test("shipImage() installs a cold copy on the stand-in host, then finds it there", async () => {
  await withImage(false, (image, dir) =>
    withFakeHost(dir, async (ssh, cache) => {
      const first = await shipImage(image, ssh);
      assert.equal(first.copied, true);
      assert.equal(first.compression, "zstd");
      assert.equal(await Deno.readTextFile(join(cache, image.hash, "manifest")), image.manifest);
      const second = await shipImage(image, ssh);
      assert.equal(second.copied, false);
    }));
});

Deno.test("shipImage() reports a compressed file that does not decompress on the host as a corrupt copy", async () => {
  await withImage(true, (image, dir) =>
    withFakeHost(dir, async (ssh, cache) => {
      const error = await shipImage(image, ssh).then(() => null, (caught: unknown) => caught);
      assert.ok(error instanceof ImageShipError, String(error));
      assert.match(
        error.message,
        /^Image copied to fakehost is corrupt or incomplete \(packed\/deno\.zst does not decompress: .*checksum\): it was removed and will not run; retry/s,
      );
      assert.deepEqual(await listing(cache), ["files"], "nothing but the store is left");
    }));
});

Deno.test("shipImage() reports an image it cannot rename into place, naming the host and the directory", async () => {
  await withImage(false, (image, dir) =>
    withFakeHost(dir, async (ssh, cache) => {
      await Deno.mkdir(cache, { recursive: true });
      await Deno.writeTextFile(join(cache, image.hash), "in the way\n");
      const error = await shipImage(image, ssh).then(() => null, (caught: unknown) => caught);
      assert.ok(error instanceof ImageShipError, String(error));
      assert.match(
        error.message,
        new RegExp(
          `^Cannot install the image in fakehost:~/\\.cache/fabricd/${image.hash}: mv: .+; ` +
            "check ~/\\.cache/fabricd there \\(its permissions, or a file of that name in the way\\) and retry$",
          "s",
        ),
      );
      assert.deepEqual(await listing(cache), ["files", image.hash].sort(), "the copy is removed");
    }));
});

Deno.test("shipImage() reports a directory of the image's name that is not a complete image (an upgrade)", async () => {
  await withImage(false, (image, dir) =>
    withFakeHost(dir, async (ssh, cache) => {
      await shipImage(image, ssh);
      // The store gets its links in the background; then the host holds deno.
      const deno = join(cache, "files", image.files.find((f) => f.name === "deno")!.sha256);
      for (let waited = 0; !(await Deno.stat(deno).then(() => true, () => false)); waited += 20) {
        assert.ok(waited < 5000, "the host's store gets deno");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // The next version: one file of the bundle changed; the host holds the rest.
      const next = join(dir, "next");
      const files = [];
      for (const f of image.files) {
        const path = join(next, f.name);
        await Deno.mkdir(join(path, ".."), { recursive: true });
        await Deno.copyFile(f.path, path);
        files.push({ name: f.name, path });
      }
      await Deno.writeTextFile(join(next, "js", "main.js"), "console.log(2);\n");
      const upgraded = await imageOf("bundle", files);
      await Deno.mkdir(join(cache, upgraded.hash));
      await Deno.writeTextFile(join(cache, upgraded.hash, "deno"), "half\n");
      let copied = 0;
      await assert.rejects(
        () => shipImage(upgraded, ssh, { onCopy: (_, total) => void (copied = total) }),
        (error: Error) => {
          assert.ok(error instanceof ImageShipError);
          assert.equal(
            error.message,
            `Cannot install the image in fakehost:~/.cache/fabricd/${upgraded.hash}: a directory ` +
              "of that name is there but is not a complete image (no .complete); remove it there and retry",
          );
          return true;
        },
      );
      assert.equal(copied, "console.log(2);\n".length, "only main.js travels");
      assert.deepEqual(await listing(join(cache, upgraded.hash)), ["deno"]);
      assert.deepEqual(
        await listing(cache),
        ["files", image.hash, upgraded.hash].sort(),
        "the copy is removed",
      );
    }));
});
