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
