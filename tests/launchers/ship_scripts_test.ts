/**
 * The host's side of an image copy (`_ship_scripts.ts`), run here with the
 * local `sh` in place of an SSH channel: the stream a local `cat` would send
 * goes to the script's standard input. It must install a copy whose every
 * hash matches, and refuse (exit 3, `GOT` lines, nothing left) one that does
 * not, with either hasher. (Image file names are `[A-Za-z0-9._/-]+`: `readImageDir`.)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { imageOf, type SelfImage } from "../../src/image/image_dir.ts";
import { sha256FileHex } from "../../src/crypto/hash.ts";
import {
  installLines,
  linkArchive,
  OWN_CHANNEL_BYTES,
  planStream,
  receiveLines,
  WRONG_HASH,
} from "../../src/launchers/_ship_scripts.ts";

const HASHERS = ["sha256sum", "openssl dgst -sha256 -r"];

/** A small image with a large `deno` (random bytes, so compression cannot shrink it away). */
async function fakeImage(dir: string, packed: boolean): Promise<SelfImage> {
  const src = join(dir, "src");
  await Deno.mkdir(join(src, "js"), { recursive: true });
  const deno = new Uint8Array(OWN_CHANNEL_BYTES + 1000);
  for (let at = 0; at < deno.length; at += 65536) {
    crypto.getRandomValues(deno.subarray(at, Math.min(at + 65536, deno.length)));
  }
  await Deno.writeFile(join(src, "deno"), deno);
  await Deno.writeTextFile(join(src, "fabricd"), "#!/bin/sh\necho fake\n");
  await Deno.writeTextFile(join(src, "js", "main.js"), "console.log(1);\n");
  await Deno.writeTextFile(join(src, "js", "chunk-a.js"), "export {};\n");
  // openssl prints "HASH *fabricd": as a pattern that names this file too.
  await Deno.writeTextFile(join(src, "xfabricd"), "not the launcher\n");
  const image = await imageOf(
    "bundle",
    ["deno", "fabricd", "js/main.js", "js/chunk-a.js", "xfabricd"].map((name) => ({
      name,
      path: join(src, name),
    })),
  );
  if (!packed) return image;
  const zst = join(src, "deno.zst");
  const zstd = await new Deno.Command("zstd", {
    args: ["-q", "-1", "-f", "-o", zst, join(src, "deno")],
  }).output();
  assert(zstd.success, "zstd must be installed for this test");
  const packedSha256 = await sha256FileHex(zst);
  return {
    ...image,
    files: image.files.map((f) => f.name === "deno" ? { ...f, packed: zst, packedSha256 } : f),
  };
}

/** Runs the host's script on a stream made as the sender makes it; answers its exit code and output. */
async function copy(
  image: SelfImage,
  options: { hasher: string; zstd: boolean; cache: string; expectHash?: string },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const stream = await planStream(image.files, {
    hasher: options.hasher,
    zstd: options.zstd,
    expectHash: options.expectHash,
  });
  const tar = join(options.cache, "..", "small.tar");
  const root = image.files[0]!.path.slice(0, -image.files[0]!.name.length);
  const packed = await new Deno.Command("tar", {
    args: ["-C", root, "-cf", tar, "--", ...stream.small.map((f) => f.name)],
  }).output();
  assert(packed.success);
  const tarSize = (await Deno.stat(tar)).size;
  const script = [
    `set -e; c=${
      JSON.stringify(options.cache)
    }; mkdir -p "$c/files"; t="$c/.tmp-test"; mkdir -p "$t"; cd "$t"`,
    ...receiveLines(stream, tarSize),
    ...installLines(image, image.files),
  ].join("\n");
  const out = await new Deno.Command("sh", {
    args: [
      "-c",
      `cat "$@" | sh -c '${script.replaceAll("'", `'"'"'`)}'`,
      "feed",
      tar,
      ...stream.sources,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

for (const hasher of HASHERS) {
  for (const zstd of [true, false]) {
    Deno.test(`a copy that matches is installed (${hasher}, ${zstd ? "zstd" : "raw"})`, async () => {
      const dir = await Deno.makeTempDir();
      try {
        const image = await fakeImage(dir, zstd);
        const cache = join(dir, "cache");
        const out = await copy(image, { hasher, zstd, cache });
        assert.equal(out.code, 0, out.stderr);
        const installed = join(cache, image.hash);
        await Deno.stat(join(installed, ".complete"));
        assert.equal(await Deno.readTextFile(join(installed, "manifest")), image.manifest);
        for (const f of image.files) {
          assert.equal(await sha256FileHex(join(installed, f.name)), f.sha256, f.name);
        }
        const mode = (await Deno.stat(join(installed, "deno"))).mode! & 0o777;
        assert.equal(mode & 0o100, 0o100, "deno is executable");
        assert.equal(
          (await Deno.readTextFile(join(installed, "packed", "manifest")).catch(() => "")) !== "",
          zstd,
          "the compressed form is kept and listed only when it travelled",
        );
      } finally {
        await removeTree(dir);
      }
    });
  }

  Deno.test(`a copy whose hashes differ is refused and removed (${hasher})`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const image = await fakeImage(dir, true);
      const cache = join(dir, "cache");
      const wrong = "0".repeat(64);
      const out = await copy(image, { hasher, zstd: true, cache, expectHash: wrong });
      assert.equal(out.code, WRONG_HASH, out.stderr);
      // Every arrived file is listed with the hash the host computed.
      const got = out.stdout.split("\n").filter((line) => line.startsWith("GOT "));
      assert.equal(got.length, image.files.length);
      const deno = image.files.find((f) => f.name === "deno")!;
      const chunk = image.files.find((f) => f.name === "js/chunk-a.js")!;
      assert.ok(got.includes(`GOT ${deno.packedSha256} deno`), out.stdout);
      assert.ok(got.includes(`GOT ${chunk.sha256} js/chunk-a.js`), out.stdout);
      const left = [...Deno.readDirSync(cache)].map((e) => e.name);
      assert.deepEqual(left, ["files"], "nothing but the store is left");
    } finally {
      await removeTree(dir);
    }
  });
}

for (const how of ["link archive", "no link archive", "a broken link archive"] as const) {
  Deno.test(`an upgrade links the files the host holds (${how})`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const image = await fakeImage(dir, true);
      const cache = join(dir, "cache");
      // The host holds deno and the launcher in its store; the bundle travels.
      await Deno.mkdir(join(cache, "files"), { recursive: true });
      const held = image.files.filter((f) => f.name === "deno" || f.name === "fabricd");
      for (const f of held) await Deno.copyFile(f.path, join(cache, "files", f.sha256));
      const missing = image.files.filter((f) => !held.includes(f));
      const stream = await planStream(missing, {
        hasher: "sha256sum",
        zstd: true,
        expectHash: undefined,
      });
      const tar = join(dir, "small.tar");
      const root = image.files[0]!.path.slice(0, -image.files[0]!.name.length);
      const packed = await new Deno.Command("sh", {
        args: ["-c", 'r=$1; o=$2; shift 2; tar -C "$r" -cf - -- "$@" | gzip >"$o"', "sh", root, tar]
          .concat(stream.small.map((f) => f.name)),
      }).output();
      assert.ok(packed.success);
      const archive = how === "link archive"
        ? linkArchive(held, ".tmp-test")
        : how === "a broken link archive"
        ? new Uint8Array(2048).fill(7)
        : null;
      const links = join(dir, "links.tar");
      if (archive) await Deno.writeFile(links, archive);
      const script = [
        `set -e; c=${JSON.stringify(cache)}; t="$c/.tmp-test"; mkdir -p "$t"; cd "$t"`,
        ...receiveLines(
          stream,
          (await Deno.stat(tar)).size,
          archive ? { size: archive.length } : null,
        ),
        ...installLines(image, missing),
      ].join("\n");
      const out = await new Deno.Command("sh", {
        args: ["-c", `cat "$@" | sh -c '${script.replaceAll("'", `'"'"'`)}'`, "feed"]
          .concat(archive ? [links] : [], [tar]),
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const installed = join(cache, image.hash);
      for (const f of image.files) {
        assert.equal(await sha256FileHex(join(installed, f.name)), f.sha256, f.name);
      }
      const deno = await Deno.stat(join(installed, "deno"));
      const stored = await Deno.stat(join(cache, "files", held[0]!.sha256));
      assert.equal(deno.ino, stored.ino, "deno is a hard link to the store, not a copy");
      assert.equal(deno.mode! & 0o100, 0o100, "deno is executable");
    } finally {
      await removeTree(dir);
    }
  });
}

Deno.test("the link archive alone makes hard links to the store, with the tar of this host", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const sha = "a".repeat(64);
    await Deno.mkdir(join(dir, "files"));
    await Deno.writeTextFile(join(dir, "files", sha), "held\n");
    const file = { name: "js/held.js", path: "", sha256: sha, size: 5 };
    await Deno.writeFile(join(dir, "links.tar"), linkArchive([file], ".tmp-x"));
    const out = await new Deno.Command("tar", {
      args: ["-C", dir, "-xf", join(dir, "links.tar")],
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const linked = await Deno.stat(join(dir, ".tmp-x", "js", "held.js"));
    assert.equal(linked.ino, (await Deno.stat(join(dir, "files", sha))).ino);
    assert.equal(linked.nlink, 2);
  } finally {
    await removeTree(dir);
  }
});

/**
 * Removes `dir`, again for a while if that fails: the host script links the
 * arrived files into the store in the background after it ends, and a
 * removal while those links land fails with "Directory not empty".
 */
async function removeTree(dir: string): Promise<void> {
  for (let attempt = 1;; attempt++) {
    try {
      return await Deno.remove(dir, { recursive: true });
    } catch (error) {
      if (attempt >= 40) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
