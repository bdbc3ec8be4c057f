/**
 * `fabricd up` refuses a state directory another user owns or may write to
 * (78), before it writes anything there: such a user could delete, swap or
 * link the fabric's key, registry and sockets (a shared scratch directory).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { notPrivateDirectory } from "../../src/base/private_dir.ts";
import { runFabricd, withTempDir } from "../e2e/_fabric.ts";

Deno.test("fabricd up refuses a state directory others may write to, and writes nothing in it", async () => {
  await withTempDir(async (tmp) => {
    const dir = join(tmp, "shared");
    await Deno.mkdir(dir);
    await Deno.chmod(dir, 0o777);
    const out = await runFabricd(["up", "--dir", dir]);
    assert.equal(out.code, 78, out.stderr);
    assert.match(
      out.stderr,
      /Unsafe state directory: ".*shared" may be written by others \(mode 777\): run "chmod 700/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing written");
  });
});

Deno.test({
  name:
    "notPrivateDirectory() names a directory of another user, and passes the user's own 0700 one",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    await withTempDir(async (tmp) => {
      assert.equal(await notPrivateDirectory(tmp), null);
      assert.equal(await notPrivateDirectory(join(tmp, "absent")), null);
      const theirs = join(tmp, "theirs");
      await Deno.mkdir(theirs, { mode: 0o700 });
      await Deno.chown(theirs, 65534, 65534);
      assert.match((await notPrivateDirectory(theirs))!, /belongs to another user \(uid 65534\)/);
    });
  },
});
