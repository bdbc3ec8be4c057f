import assert from "node:assert/strict";
import { runTask } from "../../../src/services/agent/runner.ts";
import { type Task, taskSchema } from "../../../src/services/agent/task.ts";
import { eventually } from "../../_eventually.ts";

function task(fields: Partial<Task> & { executable: string }): Task {
  return taskSchema.parse({ id: "tsk-1", ...fields });
}

/** Live (not zombie) processes of process group `pgid`, only those named `name` if given. */
async function liveInGroup(pgid: number, name?: string): Promise<string[]> {
  const out = await new Deno.Command("pgrep", {
    args: ["-g", String(pgid), "-r", "R,S,D,T", ...(name ? ["-x", name] : [])],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean);
}

Deno.test("runTask() reports exit code 0 and the output of /bin/echo", async () => {
  const result = await runTask(task({ executable: "/bin/echo", args: ["hello", "world"] })).done;
  assert.equal(result.exitCode, 0);
  assert.equal(result.tail, "hello world\n");
  assert.equal(result.canceled, false);
});

Deno.test("runTask() reports a non-zero exit code of /bin/false", async () => {
  const result = await runTask(task({ executable: "/bin/false" })).done;
  assert.equal(result.exitCode, 1);
});

Deno.test("runTask() passes the environment and working directory without a shell", async () => {
  const result = await runTask(
    task({ executable: "/usr/bin/env", env: { GREETING: "$HOME;hi" }, cwd: "/tmp" }),
    { baseEnv: {} },
  ).done;
  assert.equal(result.tail, "GREETING=$HOME;hi\n");
  const pwd = await runTask(task({ executable: "/bin/pwd", cwd: "/tmp" })).done;
  assert.equal(pwd.tail, "/tmp\n");
});

Deno.test("runTask() keeps only the last bytes of the output", async () => {
  const result = await runTask(task({ executable: "/usr/bin/seq", args: ["1", "100000"] }), {
    tailBytes: 64,
  }).done;
  assert.equal(result.exitCode, 0);
  assert.equal(new TextEncoder().encode(result.tail).byteLength, 64);
  assert.ok(result.tail.endsWith("99999\n100000\n"), result.tail);
});

Deno.test("runTask() reports an executable that cannot start", async () => {
  const run = runTask(task({ executable: "/nonexistent/tool" }));
  const result = await run.done;
  assert.equal(result.exitCode, null);
  assert.match(result.error ?? "", /Cannot start "\/nonexistent\/tool"/);
});

Deno.test("TaskRun.cancel() kills /bin/sleep 30 and every child it started", async () => {
  // sh is only the test's way to make a process tree; the runner uses no shell.
  const run = runTask(
    task({
      executable: "/bin/sh",
      args: ["-c", "/bin/sleep 30 & /bin/sleep 30 & /bin/sleep 30; wait"],
    }),
    { graceMs: 500 },
  );
  await eventually(async () => (await liveInGroup(run.pid)).length === 4, {
    what: "sh and its three sleeps running",
  });
  const started = Date.now();
  run.cancel();
  const result = await run.done;
  assert.ok(Date.now() - started < 5000);
  assert.equal(result.canceled, true);
  assert.equal(result.signal, "SIGTERM");
  assert.deepEqual(await liveInGroup(run.pid), []);
});

Deno.test("TaskRun.cancel() sends SIGKILL when SIGTERM is ignored", async () => {
  const run = runTask(
    task({
      executable: "/bin/sh",
      args: ["-c", "trap '' TERM; /bin/sleep 30 & wait"],
    }),
    { graceMs: 300 },
  );
  // Once sleep runs, sh has set its trap: the SIGTERM of the cancel is ignored.
  await eventually(async () => (await liveInGroup(run.pid, "sleep")).length === 1);
  run.cancel();
  const result = await run.done;
  assert.equal(result.signal, "SIGKILL");
  assert.deepEqual(await liveInGroup(run.pid), []);
});

Deno.test("runTask() kills what a finished task left running and times a task out", async () => {
  const run = runTask(task({ executable: "/bin/sh", args: ["-c", "/bin/sleep 30 & exit 0"] }));
  const result = await run.done;
  assert.equal(result.exitCode, 0);
  assert.deepEqual(await liveInGroup(run.pid), []);
  const slow = runTask(task({ executable: "/bin/sleep", args: ["30"], timeoutMs: 200 }));
  const timedOut = await slow.done;
  assert.equal(timedOut.timedOut, true);
  assert.equal(timedOut.exitCode, 143);
});

Deno.test("runTask() starts the task as the leader of its own session and process group", async () => {
  const run = runTask(task({ executable: "/bin/sleep", args: ["30"] }), { graceMs: 200 });
  try {
    // setsid(1) makes the session, then execs the task in place.
    await eventually(async () =>
      (await Deno.readTextFile(`/proc/${run.pid}/cmdline`)).startsWith("/bin/sleep\0")
    );
    const stat = await Deno.readTextFile(`/proc/${run.pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 5 and 6 of /proc/PID/stat: process group and session.
    assert.deepEqual([fields[2], fields[3]], [String(run.pid), String(run.pid)]);
  } finally {
    run.cancel();
    await run.done;
  }
});

Deno.test("runTask() finds a bare executable name in the task's PATH, or cannot start it", async () => {
  const found = await runTask(task({ executable: "echo", args: ["hi"] }), {
    baseEnv: { PATH: "/nonexistent:/bin:/usr/bin" },
  }).done;
  assert.equal(found.exitCode, 0);
  assert.equal(found.tail, "hi\n");
  const missing = await runTask(task({ executable: "no-such-tool-here" }), {
    baseEnv: { PATH: "/bin:/usr/bin" },
  }).done;
  assert.equal(missing.exitCode, null);
  assert.match(missing.error ?? "", /Cannot start "no-such-tool-here": no executable/);
  const plain = await Deno.makeTempFile();
  try {
    await Deno.chmod(plain, 0o644);
    const notExecutable = await runTask(task({ executable: plain })).done;
    assert.match(notExecutable.error ?? "", /is not an executable file/);
  } finally {
    await Deno.remove(plain);
  }
});

Deno.test("TaskRun.cancel() right after the start still ends the task", async () => {
  const run = runTask(task({ executable: "/bin/sleep", args: ["30"] }), { graceMs: 5000 });
  run.cancel();
  const started = Date.now();
  const result = await run.done;
  assert.equal(result.canceled, true);
  assert.ok(Date.now() - started < 4000, "SIGTERM reached it before setsid made the group");
});

Deno.test("TaskRun.cancel(graceMs) shortens the grace of a cancel under way", async () => {
  const run = runTask(
    task({ executable: "/bin/sh", args: ["-c", "trap '' TERM; sleep 30"] }),
    { graceMs: 60_000 },
  );
  // Once sleep runs, sh has set its trap: the SIGTERM of the cancel is ignored.
  await eventually(async () => (await liveInGroup(run.pid, "sleep")).length === 1);
  run.cancel();
  run.cancel(100);
  const ended = await Promise.race([
    run.done,
    new Promise<null>((resolve) => setTimeout(() => resolve(null), 10_000)),
  ]);
  assert.ok(ended, "the task still runs 10 s after a cancel with a 100 ms grace");
  assert.equal(ended.signal, "SIGKILL");
  assert.equal(ended.canceled, true);
});
