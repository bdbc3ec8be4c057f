/**
 * Multi-process: tasks like a batch system (issue 12, item 3): a local
 * fabric, tasks submitted, listed, shown, their output read through the
 * agent, and a queued task canceled off the queue.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runFabricd, spawnLocal, withLocalFabric } from "./_fabric.ts";

Deno.test("fabricd task list, show, logs and cancel work on the queue's history and the agent's task directories", async () => {
  await withLocalFabric(async (local, dir) => {
    const fabric = join(dir, "fabric.yaml");
    const spawn = (role: string, options: Record<string, string> = {}) =>
      spawnLocal(local, role, options);
    const task = (...args: string[]) => runFabricd(["task", "--fabric", fabric, ...args]);
    const queue = await spawn("queue");
    const pubsub = await spawn("pubsub");

    // No agent yet: this one waits on the queue, and is canceled there.
    const queued = await task("submit", "--id", "tsk-queued", "--", "/bin/echo", "never");
    assert.equal(queued.code, 0, queued.stderr);
    const canceled = await task("cancel", "tsk-queued");
    assert.equal(canceled.code, 0, canceled.stderr);
    assert.match(
      canceled.stdout,
      new RegExp(`Canceled tsk-queued: removed from queue ${queue.id}`),
    );
    const shownCanceled = await task("show", "tsk-queued", "--json");
    assert.equal(JSON.parse(shownCanceled.stdout).task.state, "CANCELED");
    const counts = await task("list", "--json");
    assert.equal(JSON.parse(counts.stdout).queue.ready, 0, "its message left the queue");

    const agent = await spawn("agent", { queue: queue.id, pubsub: pubsub.id, cores: "1" });
    const ran = await task(
      "submit",
      "--wait",
      "--timeout",
      "60s",
      "--id",
      "tsk-talk",
      "--",
      "/bin/sh",
      "-c",
      "echo first line; echo second line; echo on stderr >&2; exit 3",
    );
    assert.equal(ran.code, 1, "exit 3 is FAILED");
    assert.match(ran.stdout, /FAILED/);

    const shown = await task("show", "tsk-talk");
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /state +FAILED \(exit 3\)/);
    assert.match(shown.stdout, new RegExp(`agent +${agent.id} on `));
    assert.match(shown.stdout, new RegExp(`stdout +\\S+:\\S+tasks-${agent.id}/tsk-talk/stdout`));
    assert.match(shown.stdout, /QUEUED +\(submitted\)/);
    assert.match(shown.stdout, /RUNNING/);

    const logs = await task("logs", "tsk-talk");
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout, "first line\nsecond line\n");
    const errors = await task("logs", "tsk-talk", "--stderr");
    assert.equal(errors.stdout, "on stderr\n");

    // -f follows a running task until it ends.
    const slow = await task(
      "submit",
      "--id",
      "tsk-slow",
      "--",
      "/bin/sh",
      "-c",
      "echo start; sleep 1; echo end",
    );
    assert.equal(slow.code, 0, slow.stderr);
    const followed = await task("logs", "tsk-slow", "-f");
    assert.equal(followed.code, 0, followed.stderr);
    assert.equal(followed.stdout, "start\nend\n");

    const listed = await task("list", "--json");
    const rows = JSON.parse(listed.stdout).tasks as { id: string; state: string }[];
    assert.deepEqual(
      rows.map((r) => [r.id, r.state]),
      [["tsk-slow", "DONE"], ["tsk-talk", "FAILED"], ["tsk-queued", "CANCELED"]],
    );
    const failedOnly = await task("list", "--state", "failed");
    assert.equal(failedOnly.code, 0, failedOnly.stderr);
    assert.match(failedOnly.stdout, /^tsk-talk +FAILED +agt-\S+ +\S+ +3$/m);
    assert.doesNotMatch(failedOnly.stdout, /tsk-slow/);
    const limited = await task("list", "--limit", "1", "--json");
    assert.equal(JSON.parse(limited.stdout).tasks.length, 1);

    for (const action of ["show", "logs", "cancel"]) {
      const unknown = await task(action, "tsk-nobody");
      assert.equal(unknown.code, 1, `${action}: ${unknown.stderr}`);
      assert.match(unknown.stderr, /Unknown task "tsk-nobody"/);
      assert.doesNotMatch(unknown.stderr, /^\s+at /m, "no stack trace");
    }
    const ended = await task("cancel", "tsk-talk");
    assert.equal(ended.code, 1);
    assert.match(ended.stderr, /has ended \(FAILED\)/);
  });
});
