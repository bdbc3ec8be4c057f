import assert from "node:assert/strict";
import { join } from "node:path";
import {
  Agent,
  agentRoutes,
  agentSettings,
  type TaskQueue,
  TaskSandbox,
} from "../../../src/services/agent/mod.ts";
import { QueueService, QueueStore } from "../../../src/services/queue/mod.ts";
import type { TaskLogChunk } from "../../../src/types/queue_wire.ts";
import { eventually } from "../../_eventually.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fabricd-sandbox-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

Deno.test("TaskSandbox.open() makes the task's directory afresh on a rerun, each file with its first byte", async () => {
  await withDir(async (root) => {
    const sandbox = new TaskSandbox(root);
    const first = await sandbox.open("tsk-a");
    assert.equal(first.dir, join(root, "tsk-a"));
    await first.write("stdout", bytes("out\n"));
    await first.write("stderr", bytes("err\n"));
    first.close();
    assert.equal(await Deno.readTextFile(join(root, "tsk-a", "stdout")), "out\n");
    assert.equal(await Deno.readTextFile(join(root, "tsk-a", "stderr")), "err\n");
    const again = await sandbox.open("tsk-a");
    await again.write("stderr", bytes("e2"));
    again.close();
    assert.equal((await Deno.stat(join(root, "tsk-a"))).isDirectory, true);
    await assert.rejects(Deno.stat(join(root, "tsk-a", "stdout")), Deno.errors.NotFound);
    assert.equal(await Deno.readTextFile(join(root, "tsk-a", "stderr")), "e2");
    assert.deepEqual(await sandbox.read("tsk-a", { stream: "stdout", offset: 0, max: 10 }), {
      data: "",
      next: 0,
      size: 0,
      truncated: false,
    });
    assert.throws(() => sandbox.dirOf("../etc"), TypeError);
  });
});

Deno.test("TaskOutput keeps at most maxBytes of both files together and marks the rest dropped", async () => {
  await withDir(async (root) => {
    const sandbox = new TaskSandbox(root, { maxBytes: 10 });
    const output = await sandbox.open("tsk-big");
    await output.write("stdout", bytes("123456"));
    await output.write("stderr", bytes("abcdef"));
    await output.write("stdout", bytes("more"));
    output.close();
    assert.equal(output.truncated, true);
    assert.equal(await Deno.readTextFile(join(root, "tsk-big", "stdout")), "123456");
    assert.equal(await Deno.readTextFile(join(root, "tsk-big", "stderr")), "abcd");
    const piece = await sandbox.read("tsk-big", { stream: "stderr", offset: 0, max: 100 });
    assert.deepEqual(piece, { data: "abcd", next: 4, size: 4, truncated: true });
  });
});

Deno.test("TaskSandbox.read() answers pieces from an offset, never splitting a character, and null for no directory", async () => {
  await withDir(async (root) => {
    const sandbox = new TaskSandbox(root);
    const output = await sandbox.open("tsk-utf");
    await output.write("stdout", bytes("aé€b"));
    output.close();
    // "a" (1 byte), "é" (2), "€" (3), "b" (1): 4 bytes end inside "€".
    const first = await sandbox.read("tsk-utf", { stream: "stdout", offset: 0, max: 4 });
    assert.deepEqual(first, { data: "aé", next: 3, size: 7, truncated: false });
    const rest = await sandbox.read("tsk-utf", { stream: "stdout", offset: 3, max: 100 });
    assert.deepEqual(rest, { data: "€b", next: 7, size: 7, truncated: false });
    const beyond = await sandbox.read("tsk-utf", { stream: "stdout", offset: 99, max: 100 });
    assert.deepEqual(beyond, { data: "", next: 7, size: 7, truncated: false });
    assert.equal(await sandbox.read("tsk-none", { stream: "stdout", offset: 0, max: 1 }), null);
  });
});

Deno.test("TaskSandbox keeps at most `keep` task directories, dropping the oldest finished ones first", async () => {
  await withDir(async (root) => {
    const sandbox = new TaskSandbox(root, { keep: 2 });
    const running = await sandbox.open("tsk-1");
    for (const id of ["tsk-2", "tsk-3", "tsk-4"]) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      (await sandbox.open(id)).close();
    }
    await sandbox.pruned();
    const names: string[] = [];
    for await (const entry of Deno.readDir(root)) names.push(entry.name);
    assert.deepEqual(names.sort(), ["tsk-1", "tsk-4"], "the open one stays, whatever its age");
    running.close();
  });
});

Deno.test("TaskSandbox.open() of a task whose directory is being pruned waits for the removal", async () => {
  await withDir(async (root) => {
    const sandbox = new TaskSandbox(root, { keep: 1 });
    const first = await sandbox.open("tsk-1");
    await first.write("stdout", bytes("old"));
    first.close();
    // Prunes tsk-1 (not waited for), then makes it again at once.
    (await sandbox.open("tsk-2")).close();
    const again = await sandbox.open("tsk-1");
    again.close();
    await sandbox.pruned();
    assert.equal((await Deno.stat(join(root, "tsk-1"))).isDirectory, true, "the new one stays");
    await assert.rejects(Deno.stat(join(root, "tsk-1", "stdout")), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(join(root, "tsk-2")), Deno.errors.NotFound);
  });
});

Deno.test("Agent with a sandbox runs a task in its directory, serves its output, and reports RUNNING and DONE to the history before the ack", async () => {
  await withDir(async (root) => {
    const queues = new QueueService(QueueStore.open(":memory:"));
    const queue: TaskQueue = {
      get: (name, options) => queues.get(name, options),
      ack: (name, id) => Promise.resolve(queues.ack(name, id)),
      nack: (name, id) => Promise.resolve(queues.nack(name, id)),
      report: (name, id, report) => {
        if (!queues.history.report(name, id, report)) {
          return Promise.reject(Object.assign(new Error("unknown"), { status: 404 }));
        }
        return Promise.resolve();
      },
    };
    const sandbox = new TaskSandbox(root);
    const agent = new Agent(queue, { publish: () => Promise.resolve() }, {
      agentId: "agt-00000001",
      cores: 1,
      pollWaitMs: 100,
      sandbox,
      host: "node7",
    });
    agent.start();
    try {
      queues.putOnce("tasks", {
        id: "tsk-pwd",
        executable: "/bin/sh",
        args: ["-c", "pwd; echo oops >&2"],
      }, "tsk-pwd");
      await eventually(() => queues.history.find("tasks", "tsk-pwd")?.state === "DONE", {
        timeoutMs: 10_000,
      });
      const { task, events } = queues.history.get("tasks", "tsk-pwd")!;
      assert.equal(task.output, join(root, "tsk-pwd"));
      assert.equal(task.host, "node7");
      assert.equal(task.agent, "agt-00000001");
      assert.equal(task.exitCode, 0);
      // QUEUED is the queue's own (at submit); the agent reports what happens on it.
      assert.deepEqual(events.map((e) => e.state), ["QUEUED", "RUNNING", "DONE"]);
      await eventually(() => queues.stats("tasks").inflight === 0, { timeoutMs: 5000 });
      assert.equal(queues.history.find("tasks", "tsk-pwd")?.state, "DONE", "not ENDED");
      assert.equal(
        (await Deno.readTextFile(join(root, "tsk-pwd", "stdout"))).trim(),
        await Deno.realPath(join(root, "tsk-pwd")),
        "the task's working directory is its own",
      );
      const routes = agentRoutes(() => agent, sandbox);
      const answer = await routes.request("/agent/tasks/tsk-pwd/logs?stream=stderr");
      assert.equal(answer.status, 200);
      const chunk = await answer.json() as TaskLogChunk;
      assert.deepEqual(chunk, {
        id: "tsk-pwd",
        stream: "stderr",
        offset: 0,
        data: "oops\n",
        next: 5,
        size: 5,
        truncated: false,
        running: false,
      });
      const missing = await routes.request("/agent/tasks/tsk-other/logs");
      assert.equal(missing.status, 404);
      assert.equal((await routes.request("/agent/tasks/tsk-pwd/logs?stream=stdin")).status, 400);
    } finally {
      await agent.stop();
      queues.close();
    }
  });
});

Deno.test("agentSettings() reads outputBytes and keepTasks with their defaults", () => {
  const base = { queue: "que-00000001", pubsub: "pub-00000001" };
  assert.equal(agentSettings(base).outputBytes, 10 * 1024 * 1024);
  assert.equal(agentSettings(base).keepTasks, 100);
  assert.equal(agentSettings({ ...base, outputBytes: "5", keepTasks: "2" }).outputBytes, 5);
  assert.throws(() => agentSettings({ ...base, keepTasks: "0" }), RangeError);
});
