/** Sweeping the socket directories of killed services (`serveGuarded`). */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sweepDeadSocketDirs } from "../../src/api/guarded_server.ts";

/** A socket directory as a service leaves it; `live` keeps a listener on it. */
async function socketDir(parent: string, name: string, live: boolean, ageMs: number) {
  const dir = join(parent, name);
  await Deno.mkdir(dir, { mode: 0o700 });
  const listener = Deno.listen({ transport: "unix", path: join(dir, "http.sock") });
  if (!live) listener.close();
  const then = new Date(Date.now() - ageMs);
  await Deno.utime(dir, then, then);
  return live ? listener : null;
}

Deno.test("sweepDeadSocketDirs() removes old socket directories nobody listens on, and nothing else", async () => {
  const parent = await Deno.makeTempDir();
  const live = await socketDir(parent, "fabricd-http-live", true, 3_600_000);
  try {
    await socketDir(parent, "fabricd-http-dead", false, 3_600_000);
    await socketDir(parent, "fabricd-http-young", false, 0);
    await Deno.mkdir(join(parent, "fabricd-http-empty"));
    await Deno.utime(join(parent, "fabricd-http-empty"), new Date(0), new Date(0));
    await Deno.mkdir(join(parent, "other-dead"));
    await Deno.utime(join(parent, "other-dead"), new Date(0), new Date(0));

    assert.deepEqual(await sweepDeadSocketDirs(parent), 2);
    const left = [];
    for await (const entry of Deno.readDir(parent)) left.push(entry.name);
    assert.deepEqual(left.sort(), ["fabricd-http-live", "fabricd-http-young", "other-dead"]);
  } finally {
    live?.close();
    await Deno.remove(parent, { recursive: true });
  }
});
