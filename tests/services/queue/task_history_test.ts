import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { QueueStore } from "../../../src/services/queue/queue_store.ts";
import { TaskHistory } from "../../../src/services/queue/task_history.ts";
import { queueApp } from "./_app.ts";

const DAY = 24 * 60 * 60 * 1000;

function task(id: string): { id: string; executable: string } {
  return { id, executable: "/bin/true" };
}

/** A store on a clock the test moves. */
function storeAt(options: { days?: number; max?: number } = {}) {
  const clock = { now: 1_000_000 };
  const store = QueueStore.open(":memory:", { now: () => clock.now, history: options });
  return { store, clock };
}

Deno.test("TaskHistory records put, take, agent reports and ack with their times", () => {
  const { store, clock } = storeAt();
  try {
    store.putOnce("tasks", task("tsk-a"), "tsk-a");
    store.put("tasks", { not: "a task" });
    assert.equal(store.history.list("tasks").length, 1, "only task payloads are recorded");
    clock.now += 100;
    const [message] = store.get("tasks", 1, 30_000);
    assert.equal(store.history.find("tasks", "tsk-a")?.takenAt, clock.now);
    store.history.report("tasks", "tsk-a", {
      state: "RUNNING",
      agent: "agt-1",
      host: "node1",
      at: clock.now + 5, // ahead of the queue's clock: taken as now
      output: "/d/tasks-agt-1/tsk-a",
    });
    clock.now += 1000;
    const done = store.history.report("tasks", "tsk-a", {
      state: "FAILED",
      agent: "agt-1",
      at: clock.now,
      exitCode: 3,
    });
    assert.equal(done?.state, "FAILED");
    store.ack("tasks", message!.id);
    const shown = store.history.get("tasks", "tsk-a")!;
    assert.equal(shown.task.state, "FAILED", "the ack does not overwrite a final report");
    assert.equal(shown.task.exitCode, 3);
    assert.equal(shown.task.host, "node1");
    assert.equal(shown.task.output, "/d/tasks-agt-1/tsk-a");
    assert.equal(shown.task.startedAt, 1_000_100);
    assert.equal(shown.task.endedAt, 1_001_100);
    assert.equal(shown.task.deliveries, 1);
    assert.deepEqual(shown.events.map((e) => e.state), ["QUEUED", "RUNNING", "FAILED"]);
    assert.equal(shown.events[2]!.note, "exit 3");
  } finally {
    store.close();
  }
});

Deno.test("TaskHistory.acked() ends a task ENDED when its final report has not come, and a late report replaces it", () => {
  const { store } = storeAt();
  try {
    store.put("tasks", task("tsk-b"));
    const [message] = store.get("tasks", 1, 30_000);
    store.ack("tasks", message!.id);
    assert.equal(store.history.find("tasks", "tsk-b")?.state, "ENDED");
    store.history.report("tasks", "tsk-b", { state: "RUNNING", agent: "a", at: 1 });
    assert.equal(store.history.find("tasks", "tsk-b")?.state, "ENDED", "no step back");
    store.history.report("tasks", "tsk-b", { state: "DONE", agent: "a", at: 2, exitCode: 0 });
    assert.equal(store.history.find("tasks", "tsk-b")?.state, "DONE");
    store.history.report("tasks", "tsk-b", { state: "FAILED", agent: "b", at: 3, exitCode: 1 });
    assert.equal(store.history.find("tasks", "tsk-b")?.state, "DONE", "the first final wins");
  } finally {
    store.close();
  }
});

Deno.test("TaskHistory.released() makes a nacked task QUEUED again", () => {
  const { store } = storeAt();
  try {
    store.put("tasks", task("tsk-n"));
    const [message] = store.get("tasks", 1, 30_000);
    store.history.report("tasks", "tsk-n", { state: "RUNNING", agent: "a", at: 1 });
    store.nack("tasks", message!.id);
    assert.equal(store.history.find("tasks", "tsk-n")?.state, "QUEUED");
    store.get("tasks", 1, 30_000);
    assert.equal(store.history.find("tasks", "tsk-n")?.deliveries, 2);
  } finally {
    store.close();
  }
});

Deno.test("QueueStore.cancelTask() removes a waiting task, refuses a taken or ended one, and knows no stranger", () => {
  const { store } = storeAt();
  try {
    store.put("tasks", task("tsk-wait"));
    store.put("tasks", task("tsk-taken"));
    store.get("tasks", 1, 30_000);
    // tsk-wait was the first and is taken now; put order decides.
    const taken = store.cancelTask("tasks", "tsk-wait");
    assert.equal(taken.outcome, "taken");
    const removed = store.cancelTask("tasks", "tsk-taken");
    assert.equal(removed.outcome, "canceled");
    assert.deepEqual(store.counts("tasks"), { ready: 0, inflight: 1 }, "its message is gone");
    assert.equal(store.history.find("tasks", "tsk-taken")?.state, "CANCELED");
    assert.equal(store.cancelTask("tasks", "tsk-taken").outcome, "finished");
    assert.equal(store.cancelTask("tasks", "tsk-nobody").outcome, "unknown");
    assert.equal(store.cancelTask("other", "tsk-wait").outcome, "unknown", "per queue name");
  } finally {
    store.close();
  }
});

Deno.test("TaskHistory.prune() drops finished tasks past their days and beyond max, never unfinished ones", () => {
  const { store, clock } = storeAt({ days: 1, max: 2 });
  try {
    for (const id of ["t1", "t2", "t3", "t4"]) {
      store.put("tasks", task(id));
      clock.now += 10;
    }
    store.put("tasks", task("t-waiting"));
    for (const id of ["t1", "t2", "t3"]) {
      clock.now += 10;
      store.history.report("tasks", id, { state: "DONE", agent: "a", at: clock.now, exitCode: 0 });
    }
    assert.equal(store.history.prune(), 1, "t1, the oldest finished, is beyond max=2");
    assert.deepEqual(store.history.list("tasks").map((t) => t.id).sort(), [
      "t-waiting",
      "t2",
      "t3",
      "t4",
    ]);
    assert.deepEqual(store.history.get("tasks", "t1"), null);
    clock.now += DAY + 1000;
    assert.equal(store.history.prune(), 2, "t2 and t3 are older than a day");
    assert.deepEqual(store.history.list("tasks").map((t) => t.id).sort(), ["t-waiting", "t4"]);
  } finally {
    store.close();
  }
});

Deno.test("TaskHistory prunes by count as tasks finish, without a call to prune()", () => {
  const { store, clock } = storeAt({ max: 10 });
  try {
    for (let i = 0; i < 150; i++) {
      store.put("tasks", task(`t${i}`));
      clock.now += 1;
      store.history.report("tasks", `t${i}`, { state: "DONE", agent: "a", at: clock.now });
    }
    const kept = store.history.list("tasks", { limit: 1000 }).length;
    assert.ok(kept <= 60, `the 100th finish pruned to 10, then 50 more came: ${kept}`);
    assert.ok(kept >= 10);
  } finally {
    store.close();
  }
});

Deno.test("TaskHistory.list() filters by state, limits, and puts the newest first", () => {
  const { store, clock } = storeAt();
  try {
    for (const id of ["a", "b", "c"]) {
      store.put("tasks", task(id));
      clock.now += 1;
    }
    store.history.report("tasks", "b", { state: "DONE", agent: "x", at: clock.now });
    assert.deepEqual(store.history.list("tasks").map((t) => t.id), ["c", "b", "a"]);
    assert.deepEqual(store.history.list("tasks", { limit: 2 }).map((t) => t.id), ["c", "b"]);
    assert.deepEqual(store.history.list("tasks", { state: "DONE" }).map((t) => t.id), ["b"]);
  } finally {
    store.close();
  }
});

Deno.test("TaskHistory keeps a task's first and newest state changes when there are too many", () => {
  const { store } = storeAt();
  try {
    store.put("tasks", task("busy"));
    for (let i = 0; i < 50; i++) {
      store.history.report("tasks", "busy", { state: "RUNNING", agent: `a${i}`, at: i });
    }
    const { events } = store.history.get("tasks", "busy")!;
    assert.equal(events.length, 32);
    assert.equal(events[0]!.note, "submitted");
    assert.equal(events.at(-1)!.agent, "a49");
  } finally {
    store.close();
  }
});

Deno.test("QueueStore keeps the task history across a reopen of its file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/q.db`;
    const first = QueueStore.open(path);
    first.putOnce("tasks", task("tsk-k"), "tsk-k");
    first.close();
    const again = QueueStore.open(path, { mustExist: true });
    assert.equal(again.history.find("tasks", "tsk-k")?.state, "QUEUED");
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("task routes list, show, take reports, cancel, and answer 404 for an unknown task", async () => {
  const q = await queueApp();
  try {
    const put = await q.request("POST", "/v1/queue/tasks/messages", {
      payload: task("tsk-r"),
      key: "tsk-r",
    });
    assert.equal(put.status, 201);
    const report = await q.request("POST", "/v1/queue/tasks/tasks/tsk-r/state", {
      state: "QUEUED",
      agent: "agt-1",
      at: Date.now(),
    });
    assert.equal(report.status, 200, JSON.stringify(report.json));
    const listed = await q.request("GET", "/v1/queue/tasks/tasks?state=QUEUED&limit=5");
    assert.equal(listed.status, 200);
    assert.deepEqual((listed.json.tasks as { id: string }[]).map((t) => t.id), ["tsk-r"]);
    const shown = await q.request("GET", "/v1/queue/tasks/tasks/tsk-r");
    assert.equal(shown.status, 200);
    assert.equal((shown.json.task as { agent: string }).agent, "agt-1");
    assert.ok(shown.verified);
    const canceled = await q.request("POST", "/v1/queue/tasks/tasks/tsk-r/cancel");
    assert.deepEqual([canceled.status, canceled.json], [200, { id: "tsk-r", state: "CANCELED" }]);
    const again = await q.request("POST", "/v1/queue/tasks/tasks/tsk-r/cancel");
    assert.equal(again.status, 409);
    assert.match(String(again.json.error), /has ended \(CANCELED\)/);
    const unknown = await q.request("GET", "/v1/queue/tasks/tasks/tsk-nope");
    assert.equal(unknown.status, 404);
    assert.match(String(unknown.json.error), /Task "tsk-nope" is not in the history/);
    const badState = await q.request("GET", "/v1/queue/tasks/tasks?state=DONEISH");
    assert.equal(badState.status, 400);
    const badReport = await q.request("POST", "/v1/queue/tasks/tasks/tsk-r/state", {
      state: "EXPLODED",
      agent: "a",
      at: 1,
    });
    assert.equal(badReport.status, 400);
  } finally {
    q.close();
  }
});

Deno.test("TaskHistory.report() with startedAt records RUNNING at that time, then the final state", () => {
  const { store, clock } = storeAt();
  try {
    store.putOnce("tasks", task("tsk-s"), "tsk-s");
    store.putOnce("tasks", task("tsk-t"), "tsk-t");
    store.get("tasks", 2, 30_000);
    const done = store.history.report("tasks", "tsk-s", {
      state: "DONE",
      agent: "agt-1",
      host: "node1",
      at: clock.now - 10,
      startedAt: clock.now - 30,
      exitCode: 0,
      output: "/d/tsk-s",
    });
    assert.equal(done?.state, "DONE");
    const shown = store.history.get("tasks", "tsk-s")!;
    assert.equal(shown.task.startedAt, clock.now - 30);
    assert.equal(shown.task.endedAt, clock.now - 10);
    assert.equal(shown.task.output, "/d/tsk-s");
    assert.deepEqual(
      shown.events.map((e) => [e.state, e.at, e.agent]),
      [
        ["QUEUED", clock.now, null],
        ["RUNNING", clock.now - 30, "agt-1"],
        ["DONE", clock.now - 10, "agt-1"],
      ],
    );
    // A start after the end (clocks apart) is taken as the end.
    store.history.report("tasks", "tsk-t", {
      state: "FAILED",
      agent: "agt-1",
      at: clock.now,
      startedAt: clock.now + 500,
      exitCode: 1,
    });
    assert.equal(store.history.find("tasks", "tsk-t")?.startedAt, clock.now);
  } finally {
    store.close();
  }
});

Deno.test("TaskHistory.report() commits without a sync of its own and leaves the file's level as it was", () => {
  const db = new DatabaseSync(":memory:");
  try {
    db.exec("PRAGMA synchronous = FULL");
    const history = new TaskHistory(db);
    db.exec(`INSERT INTO tasks (queue, id, message_id, state, submitted_at)
             VALUES ('tasks', 'tsk-f', 1, 'QUEUED', 0)`);
    const level = (): number =>
      (db.prepare("PRAGMA synchronous").get() as { synchronous: number }).synchronous;
    let during = -1;
    db.function("sync_level_now", () => during = level());
    db.exec("CREATE TRIGGER watch AFTER UPDATE ON tasks BEGIN SELECT sync_level_now(); END");
    history.report("tasks", "tsk-f", { state: "RUNNING", agent: "a", at: 1 });
    assert.equal(during, 1, "NORMAL while the report is written");
    assert.equal(level(), 2, "FULL again after it, for puts, gets and acks");
    assert.equal(history.find("tasks", "tsk-f")?.state, "RUNNING");
  } finally {
    db.close();
  }
});
