/**
 * `task submit --env-file FILE`: KEY=VALUE lines, so that secrets stay out of
 * the command line every user of the host can read. Checked before anything
 * is sent: a malformed line is 65, a key given twice 64.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stoppedFabric } from "./_stopped_fabric.ts";
import { runFabricd, withTempDir } from "../e2e/_fabric.ts";

Deno.test("task submit --env-file reads KEY=VALUE lines and refuses a bad one before sending", async () => {
  await withTempDir(async (dir) => {
    const fabric = await stoppedFabric(dir);
    const file = join(dir, "env");
    const submit = (...flags: string[]) =>
      runFabricd(["task", "submit", ...flags, "--fabric", fabric, "--", "/bin/true"]);
    await Deno.writeTextFile(file, "# secrets\nTOKEN=s3cr3t=x\n\nOTHER=\n");
    let out = await submit("--env-file", file);
    assert.equal(out.code, 69, `${out.stderr}: read, then the fabric is not running`);
    await Deno.writeTextFile(file, "TOKEN=1\nnot a line\n");
    out = await submit("--env-file", file);
    assert.equal(out.code, 65, out.stderr);
    assert.match(out.stderr, /env:2: not a KEY=VALUE line/);
    await Deno.writeTextFile(file, "TOKEN=1\n");
    out = await submit("--env-file", file, "--env", "TOKEN=2");
    assert.equal(out.code, 64, out.stderr);
    assert.match(out.stderr, /Repeated environment variable "TOKEN"/);
    out = await submit("--env-file", join(dir, "absent"));
    assert.equal(out.code, 65, out.stderr);
    assert.match(out.stderr, /Cannot read --env-file/);
  });
});
