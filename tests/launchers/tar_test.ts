/**
 * The ustar writer of `_tar.ts`: what the system's `tar` reads back from it,
 * and the inputs it refuses.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { tarArchive } from "../../src/launchers/_tar.ts";

Deno.test("tar reads back the files and links written, with their modes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bytes = new TextEncoder().encode("x".repeat(700));
    const archive = tarArchive([
      { name: "a/run", bytes, mode: 0o755 },
      { name: "a/empty", bytes: new Uint8Array(), mode: 0o644 },
      { name: "b/run", linkTo: "a/run" },
    ], 1_700_000_000);
    assert.equal(archive.length % 512, 0);
    await Deno.writeFile(join(dir, "x.tar"), archive);
    const out = await new Deno.Command("tar", {
      args: ["-C", dir, "-xf", join(dir, "x.tar")],
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.deepEqual(await Deno.readFile(join(dir, "a", "run")), bytes);
    assert.equal((await Deno.stat(join(dir, "a", "run"))).mode! & 0o777, 0o755);
    assert.equal((await Deno.stat(join(dir, "a", "empty"))).size, 0);
    assert.equal(
      (await Deno.stat(join(dir, "b", "run"))).ino,
      (await Deno.stat(join(dir, "a", "run"))).ino,
    );
    assert.equal((await Deno.stat(join(dir, "a", "run"))).mtime!.getTime(), 1_700_000_000_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("names too long for a header, bad modes and times are refused", () => {
  const bytes = new Uint8Array();
  assert.throws(() => tarArchive([{ name: "n".repeat(101), bytes, mode: 0o644 }], 0), RangeError);
  assert.throws(() => tarArchive([{ name: "", bytes, mode: 0o644 }], 0), RangeError);
  assert.throws(() => tarArchive([{ name: "l", linkTo: "t".repeat(101) }], 0), RangeError);
  assert.throws(() => tarArchive([{ name: "m", bytes, mode: 0o10000 }], 0), RangeError);
  assert.throws(() => tarArchive([{ name: "t", bytes, mode: 0o644 }], -1), RangeError);
  assert.equal(tarArchive([{ name: "n".repeat(100), bytes, mode: 0o644 }], 0).length, 1536);
});
