/**
 * The ustar writer of `_tar.ts`: what the system's `tar` reads back from it,
 * and the inputs it refuses.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { tarArchive } from "../../src/launchers/_tar.ts";

Deno.test("tar reads back the links written, with their time", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "a"));
    await Deno.writeTextFile(join(dir, "a", "run"), "x".repeat(700));
    const archive = tarArchive([{ name: "b/run", linkTo: "a/run" }], 1_700_000_000);
    assert.equal(archive.length % 512, 0);
    await Deno.writeFile(join(dir, "x.tar"), archive);
    const out = await new Deno.Command("tar", {
      args: ["-C", dir, "-xf", join(dir, "x.tar")],
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const linked = await Deno.stat(join(dir, "b", "run"));
    assert.equal(linked.ino, (await Deno.stat(join(dir, "a", "run"))).ino);
    assert.equal(linked.nlink, 2);
    const listing = await new Deno.Command("tar", {
      args: ["-tvf", join(dir, "x.tar")],
      stdout: "piped",
      env: { TZ: "UTC" },
    }).output();
    assert.match(
      new TextDecoder().decode(listing.stdout),
      /2023-11-14 22:13 b\/run link to a\/run/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("names too long for a header and bad times are refused", () => {
  assert.throws(() => tarArchive([{ name: "n".repeat(101), linkTo: "t" }], 0), RangeError);
  assert.throws(() => tarArchive([{ name: "", linkTo: "t" }], 0), RangeError);
  assert.throws(() => tarArchive([{ name: "l", linkTo: "t".repeat(101) }], 0), RangeError);
  assert.throws(() => tarArchive([{ name: "t", linkTo: "t" }], -1), RangeError);
  assert.equal(tarArchive([{ name: "n".repeat(100), linkTo: "t" }], 0).length, 1536);
});
