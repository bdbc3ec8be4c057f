/**
 * A small image for the tests of an image copy (`ship_scripts_test.ts`,
 * `ship_image_test.ts`), and the removal of what such a copy leaves.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { imageOf, type SelfImage } from "../../src/image/image_dir.ts";
import { sha256FileHex } from "../../src/crypto/hash.ts";
import { OWN_CHANNEL_BYTES } from "../../src/launchers/_ship_scripts.ts";

/** Options of {@linkcode fakeImage}. */
export interface FakeImageOptions {
  /**
   * Spoil the compressed `deno` after it is made, and list the hash of the
   * spoilt bytes: it arrives intact but does not decompress. Default: false.
   */
  spoilPacked?: boolean;
}

/**
 * A small image with a large `deno` (random bytes, so compression cannot
 * shrink it away), in `dir`; with its compressed form when `packed` (needs
 * zstd here).
 */
export async function fakeImage(
  dir: string,
  packed: boolean,
  options: FakeImageOptions = {},
): Promise<SelfImage> {
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
  if (options.spoilPacked) {
    // Inside a block of random bytes (stored as they are): zstd's checksum of the content fails.
    const bytes = await Deno.readFile(zst);
    for (let at = bytes.length >> 1; at < (bytes.length >> 1) + 16; at++) bytes[at]! ^= 0xff;
    await Deno.writeFile(zst, bytes);
  }
  const packedSha256 = await sha256FileHex(zst);
  return {
    ...image,
    files: image.files.map((f) => f.name === "deno" ? { ...f, packed: zst, packedSha256 } : f),
  };
}

/**
 * Removes `dir`, again for a while if that fails: the host script links the
 * arrived files into the store in the background after it ends, and a
 * removal while those links land fails with "Directory not empty".
 */
export async function removeTree(dir: string): Promise<void> {
  for (let attempt = 1;; attempt++) {
    try {
      return await Deno.remove(dir, { recursive: true });
    } catch (error) {
      if (attempt >= 40) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
