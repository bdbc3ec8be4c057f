/**
 * The host's side of an image copy (`_ship_scripts.ts`), run here with the
 * local `sh` in place of an SSH channel: the stream a local `cat` would send
 * goes to the script's standard input. It must install a copy whose every
 * hash matches, and refuse (exit 3, `GOT` lines, nothing left) one that does
 * not, with either hasher, or whose compressed file does not decompress (exit
 * 3, `UNPACK`); a copy it cannot rename into place fails too (exit 4,
 * `NOINSTALL`), one that another process installed meanwhile is dropped.
 * (Image file names are `[A-Za-z0-9._/-]+`: `readImageDir`.)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { SelfImage } from "../../src/image/image_dir.ts";
import { sha256FileHex } from "../../src/crypto/hash.ts";
import {
  installLines,
  linkArchive,
  NOT_INSTALLED,
  planStream,
  receiveLines,
  WRONG_HASH,
} from "../../src/launchers/_ship_scripts.ts";
import { fakeImage, removeTree } from "./_fake_image.ts";

const HASHERS = ["sha256sum", "openssl dgst -sha256 -r"];

/**
 * Runs the host's script on a stream made as the sender makes it; answers its
 * exit code and output. `mv`: the body of a script that stands in for `mv`
 * (with itself dropped from `PATH`, so that `mv` is the real one there).
 */
async function copy(
  image: SelfImage,
  options: { hasher: string; zstd: boolean; cache: string; expectHash?: string; mv?: string },
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
  let path = Deno.env.get("PATH") ?? "";
  if (options.mv !== undefined) {
    const bin = join(options.cache, "..", "bin");
    await Deno.mkdir(bin, { recursive: true });
    await Deno.writeTextFile(join(bin, "mv"), `#!/bin/sh\nPATH=\${PATH#*:}\n${options.mv}\n`, {
      mode: 0o755,
    });
    path = `${bin}:${path}`;
  }
  const out = await new Deno.Command("sh", {
    args: [
      "-c",
      `cat "$@" | sh -c '${script.replaceAll("'", `'"'"'`)}'`,
      "feed",
      tar,
      ...stream.sources,
    ],
    env: { PATH: path },
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

Deno.test("a copy is installed by an mv without -T (BusyBox's, BSD's)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const image = await fakeImage(dir, true);
    const cache = join(dir, "cache");
    const out = await copy(image, {
      hasher: "sha256sum",
      zstd: true,
      cache,
      mv: 'for a; do [ "$a" != -T ] || { echo "mv: illegal option -- T" >&2; exit 64; }; done\n' +
        'exec mv "$@"',
    });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(await Deno.readTextFile(join(cache, image.hash, "manifest")), image.manifest);
    await Deno.stat(join(cache, image.hash, ".complete"));
    assert.deepEqual(await listing(cache), ["files", image.hash].sort());
  } finally {
    await removeTree(dir);
  }
});

Deno.test("a copy that cannot be renamed into place fails with NOT_INSTALLED and is removed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const image = await fakeImage(dir, true);
    const cache = join(dir, "cache");
    // A file where the image's directory goes: rename(2) fails (ENOTDIR or EISDIR), even for root.
    await Deno.mkdir(cache);
    await Deno.writeTextFile(join(cache, image.hash), "in the way\n");
    const out = await copy(image, { hasher: "sha256sum", zstd: true, cache });
    assert.equal(out.code, NOT_INSTALLED, out.stderr);
    assert.match(out.stdout, /^NOINSTALL mv: .+/m);
    assert.equal(await Deno.readTextFile(join(cache, image.hash)), "in the way\n");
    assert.deepEqual(await listing(cache), ["files", image.hash].sort(), "the copy is removed");
  } finally {
    await removeTree(dir);
  }
});

Deno.test("a copy that meets a directory of its name that is not a complete image fails with NOT_INSTALLED", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const image = await fakeImage(dir, true);
    const cache = join(dir, "cache");
    await Deno.mkdir(join(cache, image.hash), { recursive: true });
    await Deno.writeTextFile(join(cache, image.hash, "deno"), "half\n");
    const out = await copy(image, { hasher: "sha256sum", zstd: true, cache });
    assert.equal(out.code, NOT_INSTALLED, out.stderr);
    assert.match(out.stdout, /^NOINSTALL STALE$/m);
    assert.deepEqual(await listing(cache), ["files", image.hash].sort(), "the copy is removed");
    assert.deepEqual(await listing(join(cache, image.hash)), ["deno"], "and not left inside it");
  } finally {
    await removeTree(dir);
  }
});

for (const when of ["before", "between the test and the rename", "empty leftover"] as const) {
  Deno.test(`a copy that another process installs meanwhile is dropped (${when})`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const image = await fakeImage(dir, true);
      const cache = join(dir, "cache");
      const final = join(cache, image.hash);
      // The other copy: complete, told apart by a file of its own.
      const other = 'mkdir -p "$1" && : >"$1/.complete" && echo other >"$1/other"';
      if (when === "before") {
        const made = await new Deno.Command("sh", { args: ["-c", other, "sh", final] }).output();
        assert.ok(made.success);
      }
      if (when === "empty leftover") await Deno.mkdir(final, { recursive: true });
      const out = await copy(image, {
        hasher: "sha256sum",
        zstd: true,
        cache,
        ...(when === "between the test and the rename"
          ? { mv: `for d; do :; done; sh -c '${other}' sh "$d"\nexec mv "$@"` }
          : {}),
      });
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual(await listing(cache), ["files", image.hash].sort());
      const installed = await listing(final);
      if (when === "empty leftover") {
        assert.equal(await Deno.readTextFile(join(final, "manifest")), image.manifest);
      } else assert.deepEqual(installed, [".complete", "other"], "ours is not left inside it");
    } finally {
      await removeTree(dir);
    }
  });
}

Deno.test("a compressed file that does not decompress ends the copy like a wrong hash", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const image = await fakeImage(dir, true, { spoilPacked: true });
    const cache = join(dir, "cache");
    const out = await copy(image, { hasher: "sha256sum", zstd: true, cache });
    assert.equal(out.code, WRONG_HASH, out.stderr);
    assert.match(out.stdout, /^UNPACK packed\/deno\.zst$/m);
    assert.doesNotMatch(out.stdout, /^GOT /m, "every hash matched");
    assert.deepEqual(await listing(cache), ["files"], "nothing but the store is left");
  } finally {
    await removeTree(dir);
  }
});

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

/** The names in `dir`, sorted. */
async function listing(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}
