import assert from "node:assert/strict";
import { runTask } from "../../../src/services/agent/runner.ts";
import { MAX_TASK_TIMEOUT_MS, parseTask, taskSchema } from "../../../src/services/agent/task.ts";

const TASK = { id: "tsk-1a2b", executable: "/bin/true" };

Deno.test("parseTask() refuses a timeoutMs a timer cannot wait, naming the field and its range", () => {
  for (const timeoutMs of [2 ** 31, 2 ** 32 + 5, 1e12, Number.MAX_SAFE_INTEGER, 0, -1, 1.5]) {
    const parsed = parseTask({ ...TASK, timeoutMs }, "m1");
    assert.ok(!parsed.ok, `timeoutMs ${timeoutMs} was accepted`);
    assert.equal(parsed.id, "tsk-1a2b");
    assert.equal(
      parsed.reason,
      'Invalid task field "timeoutMs": must be a whole number of ms from 1 to 2147483647 ' +
        "(about 24.8 days)",
    );
  }
});

Deno.test("parseTask() accepts a timeoutMs from 1 ms to 2^31 - 1 ms", () => {
  assert.equal(MAX_TASK_TIMEOUT_MS, 2 ** 31 - 1);
  for (const timeoutMs of [1, 600_000, MAX_TASK_TIMEOUT_MS]) {
    const parsed = parseTask({ ...TASK, timeoutMs }, "m1");
    assert.ok(parsed.ok, JSON.stringify(parsed));
    assert.equal(parsed.task.timeoutMs, timeoutMs);
  }
  const without = parseTask(TASK, "m1");
  assert.ok(without.ok && without.task.timeoutMs === undefined);
});

Deno.test("runTask() lets a task with the longest timeoutMs run to its end", async () => {
  const task = taskSchema.parse({
    ...TASK,
    executable: "/bin/sleep",
    args: ["0.3"],
    timeoutMs: MAX_TASK_TIMEOUT_MS,
  });
  const result = await runTask(task).done;
  assert.equal(result.timedOut, false);
  assert.equal(result.exitCode, 0);
});
