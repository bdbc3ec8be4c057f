import assert from "node:assert/strict";
import { join } from "node:path";
import { buildImage, ImageUnavailableError, sourceHash } from "../../src/image/build_image.ts";
import { imageHash, manifestText, readImageDir } from "../../src/image/image_dir.ts";
import { withTempDir } from "../e2e/_fabric.ts";

Deno.test("buildImage() fails at once with the offline recipe when deno bundle cannot finish", async () => {
  await withTempDir(async (dir) => {
    const error = await buildImage({ cacheDir: dir, bundleTimeoutMs: 1 }).catch((e) => e);
    assert.ok(error instanceof ImageUnavailableError, String(error));
    assert.match(error.message, /deno@2.9.6 task image --out DIR/);
    assert.match(error.message, /Air-gapped sites/);
    // Nothing half-built is left in the cache.
    const left = [];
    for await (const entry of Deno.readDir(dir)) left.push(entry.name);
    assert.deepEqual(left.filter((n) => n.startsWith(".build-")), []);
  });
});

Deno.test("sourceHash() is the same for the same checkout", async () => {
  assert.equal(await sourceHash(), await sourceHash());
  assert.match(await sourceHash(), /^[0-9a-f]{64}$/);
});

Deno.test("imageHash() follows the manifest, which is sorted by name", () => {
  const a = manifestText([{ name: "js/main.js", sha256: "1".repeat(64) }, {
    name: "deno",
    sha256: "2".repeat(64),
  }]);
  assert.equal(a, `${"2".repeat(64)}  deno\n${"1".repeat(64)}  js/main.js\n`);
  assert.notEqual(imageHash(a), imageHash(a.replace("1", "3")));
});

Deno.test("readImageDir() refuses an unfinished image and a manifest that leaves the directory", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "manifest"), `${"0".repeat(64)}  fabricd\n`);
    await assert.rejects(readImageDir(dir), /not a whole fabricd image/);
    await Deno.writeTextFile(join(dir, ".complete"), "");
    await Deno.writeTextFile(join(dir, "manifest"), `${"0".repeat(64)}  ../etc/passwd\n`);
    await assert.rejects(readImageDir(dir), /Malformed line/);
  });
});
