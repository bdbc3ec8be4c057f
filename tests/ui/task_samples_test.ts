import assert from "node:assert/strict";
import type { FabricKeys } from "../../src/crypto/keys.ts";
import type { ScrapeResult } from "../../src/ui/scrape.ts";
import { parseTaskMetrics, TaskSampler } from "../../src/ui/task_samples.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";

const KEYS = {} as FabricKeys;

function queueText(ready: number, inflight: number): string {
  return [
    "# HELP fabricd_queue_depth Messages held by queue and state (ready, inflight)",
    "# TYPE fabricd_queue_depth gauge",
    `fabricd_queue_depth{queue="tasks",state="ready"} ${ready}`,
    `fabricd_queue_depth{queue="tasks",state="inflight"} ${inflight}`,
    `fabricd_queue_depth{queue="other",state="ready"} 1`,
    `fabricd_queue_messages_total{event="acked"} 99`,
  ].join("\n");
}

function agentText(busy: number, done: number, failed: number): string {
  return [
    `fabricd_agent_slots{state="busy"} ${busy}`,
    `fabricd_agent_slots{state="free"} 9`,
    `fabricd_agent_tasks_total{state="DONE"} ${done}`,
    `fabricd_agent_tasks_total{state="FAILED"} ${failed}`,
    `fabricd_agent_tasks_total{state="CANCELED"} 0`,
    `fabricd_agent_tasks_total{stat="DONE"} 1000`,
    'fabricd_agent_tasks_total{state="DONE"} not-a-number',
  ].join("\n");
}

Deno.test("parseTaskMetrics() sums depth over queues and reads slots and ended tasks", () => {
  assert.deepEqual(parseTaskMetrics(queueText(5, 2) + "\n" + agentText(3, 10, 4)), {
    depth: 6,
    inflight: 2,
    busy: 3,
    done: 10,
    failed: 4,
    canceled: 0,
  });
  assert.deepEqual(parseTaskMetrics("garbage\n# HELP x\n"), {
    depth: 0,
    inflight: 0,
    busy: 0,
    done: 0,
    failed: 0,
    canceled: 0,
  });
});

Deno.test("TaskSampler.sample() turns counters into rates and ignores totals from before it looked", async () => {
  const queue = serviceRecord("que-00000001", { role: "queue", started: 0 });
  const old = serviceRecord("agt-00000002", { role: "agent", started: 0 });
  const late = serviceRecord("agt-00000003", { role: "agent", started: 10_500 });
  let answers: ScrapeResult[] = [];
  const sampler = new TaskSampler(KEYS, () => Promise.resolve([queue, old, late]), {
    scrape: () => Promise.resolve(answers),
  });
  const answer = (record: ServiceRecord, text: string | null): ScrapeResult => ({
    record,
    text,
    error: text === null ? "timeout" : "",
  });
  answers = [answer(queue, queueText(8, 1)), answer(old, agentText(2, 500, 7))];
  const first = await sampler.sample(10_000);
  assert.deepEqual(first, { at: 10_000, depth: 9, inflight: 1, running: 2, done: 0, failed: 0 });
  // Two seconds later: the old agent ended 10 more DONE and 2 FAILED; a new one started
  // after the first sample and ended 4 DONE; counted from zero.
  answers = [
    answer(queue, queueText(3, 2)),
    answer(old, agentText(2, 510, 9)),
    answer(late, agentText(1, 4, 0)),
  ];
  const second = await sampler.sample(12_000);
  assert.deepEqual(second, { at: 12_000, depth: 4, inflight: 2, running: 3, done: 7, failed: 1 });
  // The old agent does not answer once: its counters are kept, not lost.
  answers = [answer(queue, queueText(3, 2)), answer(old, null), answer(late, agentText(1, 4, 0))];
  assert.equal((await sampler.sample(14_000)).done, 0);
  answers = [answer(old, agentText(0, 516, 9)), answer(late, agentText(0, 4, 0))];
  assert.equal((await sampler.sample(16_000)).done, 3);
  assert.deepEqual(sampler.samples().map((s) => s.at), [10_000, 12_000, 14_000, 16_000]);
});

Deno.test("TaskSampler keeps at most capacity samples, the newest", async () => {
  const sampler = new TaskSampler(KEYS, () => Promise.resolve([]), {
    capacity: 3,
    scrape: () => Promise.resolve([]),
  });
  for (let at = 1; at <= 10; at++) await sampler.sample(at * 1000);
  assert.deepEqual(sampler.samples().map((s) => s.at), [8000, 9000, 10_000]);
  assert.throws(
    () => new TaskSampler(KEYS, () => Promise.resolve([]), { capacity: 0 }),
    RangeError,
  );
});

Deno.test("TaskSampler.start() samples on its timer until stop()", async () => {
  let calls = 0;
  const sampler = new TaskSampler(KEYS, () => Promise.resolve([]), {
    intervalMs: 10,
    scrape: () => {
      calls++;
      return Promise.resolve([]);
    },
  });
  sampler.start();
  sampler.start();
  await new Promise((r) => setTimeout(r, 60));
  sampler.stop();
  const seen = calls;
  await new Promise((r) => setTimeout(r, 40));
  assert.ok(seen >= 2, `sampled ${seen} times`);
  assert.equal(calls, seen, "no sample after stop()");
});
