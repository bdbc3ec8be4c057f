import assert from "node:assert/strict";
import { TaskReporter } from "../../../src/services/agent/_task_reporter.ts";
import type { TaskQueue } from "../../../src/services/agent/agent.ts";
import type { TaskReport } from "../../../src/types/queue_wire.ts";
import { eventually } from "../../_eventually.ts";

/** A reporter over a queue that keeps every report it takes. */
function reporter(): { reporter: TaskReporter; reports: [string, TaskReport][] } {
  const reports: [string, TaskReport][] = [];
  const queue: TaskQueue = {
    get: () => Promise.resolve([]),
    ack: () => Promise.resolve(),
    nack: () => Promise.resolve(),
    report: (_name, id, report) => {
      reports.push([id, report]);
      return Promise.resolve();
    },
  };
  const events = { publish: () => Promise.resolve() };
  return {
    reporter: new TaskReporter(events, queue, {
      agentId: "agt-1",
      host: "node1",
      queueName: "tasks",
      retryMs: 10,
      stopping: new AbortController().signal,
    }),
    reports,
  };
}

Deno.test("TaskReporter.state() reports a task that ends at once in one final report with startedAt", async () => {
  const { reporter: tell, reports } = reporter();
  await tell.state("tsk-s", "QUEUED");
  await tell.state("tsk-s", "RUNNING", { output: "/d/tsk-s" });
  await tell.state("tsk-s", "DONE", { exitCode: 0, tail: "" });
  assert.equal(reports.length, 1, JSON.stringify(reports));
  const [id, report] = reports[0]!;
  assert.equal(id, "tsk-s");
  assert.equal(report.state, "DONE");
  assert.equal(report.exitCode, 0);
  assert.equal(report.output, "/d/tsk-s", "the RUNNING report's directory");
  assert.equal(typeof report.startedAt, "number");
  assert.ok(report.startedAt! <= report.at);
});

Deno.test("TaskReporter.state() sends RUNNING on its own once it was held long enough, and before a give-back", async () => {
  const { reporter: tell, reports } = reporter();
  await tell.state("tsk-l", "RUNNING", { output: "/d/tsk-l" });
  await tell.state("tsk-q", "RUNNING");
  await tell.state("tsk-q", "QUEUED", { reason: "Agent is stopping" });
  await eventually(() => reports.some(([id]) => id === "tsk-l"), { what: "RUNNING of tsk-l" });
  await tell.state("tsk-l", "FAILED", { exitCode: 2 });
  const of = (task: string) => reports.filter(([id]) => id === task).map(([, r]) => r);
  assert.deepEqual(of("tsk-q").map((r) => r.state), ["RUNNING"], "QUEUED is not reported");
  assert.deepEqual(of("tsk-l").map((r) => [r.state, r.startedAt]), [
    ["RUNNING", undefined],
    ["FAILED", undefined],
  ]);
  assert.equal(of("tsk-l")[0]!.output, "/d/tsk-l");
});

/** A reporter over a queue with `finish`, logging every call; `finish` answers as `answer` says. */
function finishing(answer: (id: string) => Promise<boolean>) {
  const calls: string[] = [];
  const queue: TaskQueue = {
    get: () => Promise.resolve([]),
    ack: (_name, id) => (calls.push(`ack ${id}`), Promise.resolve()),
    nack: (_name, id) => (calls.push(`nack ${id}`), Promise.resolve()),
    report: (_name, id, report) => (calls.push(`report ${id} ${report.state}`), Promise.resolve()),
    finish: (_name, id, report, messageId) => {
      calls.push(`finish ${id} ${report.state} ${messageId} ${report.startedAt !== undefined}`);
      return answer(id);
    },
  };
  const tell = new TaskReporter({ publish: () => Promise.resolve() }, queue, {
    agentId: "agt-1",
    host: "node1",
    queueName: "tasks",
    retryMs: 5,
    stopping: new AbortController().signal,
  });
  return { tell, calls };
}

const message = (id: string) => ({ id, payload: {}, deliveries: 1 });

Deno.test("TaskReporter.end() sends a final report that carries the ack, and gives back without it", async () => {
  const { tell, calls } = finishing(() => Promise.resolve(true));
  await tell.state("tsk-a", "RUNNING");
  await tell.end("tsk-a", message("1"), { state: "DONE", fields: { exitCode: 0 }, how: "ack" });
  await tell.end("tsk-b", message("2"), {
    state: "QUEUED",
    fields: { reason: "Agent is stopping" },
    how: "nack",
  });
  assert.deepEqual(calls, ["finish tsk-a DONE 1 true", "nack 2"]);
});

Deno.test("TaskReporter.end() acknowledges alone when the history has no such task or the queue stays away", async () => {
  const notFound = Object.assign(new Error("No task"), { status: 404 });
  const away = Object.assign(new Error("closed"), { status: 0 });
  const { tell, calls } = finishing((id) => Promise.reject(id === "tsk-u" ? notFound : away));
  await tell.end("tsk-u", message("3"), { state: "DONE", fields: {}, how: "ack" });
  assert.deepEqual(calls, ["finish tsk-u DONE 3 false", "ack 3"], "404 is not tried again");
  calls.length = 0;
  await tell.end("tsk-w", message("4"), { state: "FAILED", fields: {}, how: "ack" });
  assert.deepEqual(calls, [
    "finish tsk-w FAILED 4 false",
    "finish tsk-w FAILED 4 false",
    "finish tsk-w FAILED 4 false",
    "ack 4",
  ]);
});
