/**
 * Multi-process: `fabricd task submit --wait` like a batch system (issue 12,
 * item 3): the ID at once, a notice when no agent takes tasks, a timeout that
 * leaves the task on the queue.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runFabricd, spawnLocal, withLocalFabric } from "./_fabric.ts";

Deno.test("fabricd task submit --wait --timeout prints the ID, says no agent takes tasks, and exits 1 leaving the task queued", async () => {
  await withLocalFabric(async (local, dir) => {
    const fabric = join(dir, "fabric.yaml");
    const spawn = (role: string, options: Record<string, string> = {}) =>
      spawnLocal(local, role, options);
    const queue = await spawn("queue");
    const pubsub = await spawn("pubsub");

    const noWait = await runFabricd([
      "task",
      "submit",
      "--timeout",
      "1s",
      "--fabric",
      fabric,
      "--",
      "/bin/true",
    ]);
    assert.equal(noWait.code, 64, noWait.stderr);
    assert.match(noWait.stderr, /--timeout goes with --wait/);

    const waited = await runFabricd([
      "task",
      "submit",
      "--wait",
      "--timeout",
      "4s",
      "--id",
      "tsk-lonely",
      "--fabric",
      fabric,
      "--",
      "/bin/true",
    ]);
    assert.equal(waited.code, 1, waited.stderr);
    assert.equal(waited.stdout.split("\n")[0], "tsk-lonely", "the ID comes first");
    assert.match(waited.stderr, new RegExp(`waiting: no agent takes tasks from queue ${queue.id}`));
    assert.match(
      waited.stderr,
      new RegExp(`did not end within 4000 ms: it stays on queue ${queue.id}`),
    );
    const listed = await runFabricd(["task", "list", "--json", "--fabric", fabric]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(JSON.parse(listed.stdout).queue.ready, 1, "the task is still queued");

    await spawn("agent", { queue: queue.id, pubsub: pubsub.id, cores: "1" });
    const ran = await runFabricd([
      "task",
      "submit",
      "--wait",
      "--timeout",
      "60s",
      "--fabric",
      fabric,
      "--",
      "/bin/echo",
      "hi",
    ]);
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout.split("\n")[0]!, /^tsk-[0-9a-f]{8}$/);
    assert.match(ran.stdout, /DONE/);
    assert.doesNotMatch(ran.stderr, /waiting: no agent/);

    // Given again under the ID of a task that has ended: no event will come; it says so.
    const id = ran.stdout.split("\n")[0]!;
    const again = await runFabricd([
      "task",
      "submit",
      "--wait",
      "--id",
      id,
      "--fabric",
      fabric,
      "--",
      "/bin/echo",
      "hi",
    ]);
    assert.equal(again.code, 0, again.stderr);

    // A secret from a file reaches the task, and no command line holds it.
    const envFile = join(dir, "task.env");
    await Deno.writeTextFile(envFile, "SECRET=s3cr3t-from-file\n", { mode: 0o600 });
    const secret = await runFabricd([
      "task",
      "submit",
      "--wait",
      "--env-file",
      envFile,
      "--fabric",
      fabric,
      "--",
      "/bin/sh",
      "-c",
      'echo "got $SECRET"',
    ]);
    assert.equal(secret.code, 0, secret.stderr);
    assert.match(secret.stdout, /got s3cr3t-from-file/);
    assert.match(again.stdout, new RegExp(`${id} had already ended DONE \\(exit 0\\)`));
  });
});
