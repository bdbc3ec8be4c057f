import assert from "node:assert/strict";
import {
  Agent,
  agentSettings,
  type TaskEvent,
  type TaskQueue,
} from "../../../src/services/agent/mod.ts";
import { Broker, type SubscriberSink } from "../../../src/services/pubsub/mod.ts";
import { QueueService, QueueStore } from "../../../src/services/queue/mod.ts";
import { eventually } from "../../_eventually.ts";

/** A real queue service and broker in this process, an agent over them, and its events. */
interface Bench {
  queues: QueueService;
  agent: Agent;
  events: TaskEvent[];
  statesOf(id: string): string[];
  until(check: () => boolean, timeoutMs?: number): Promise<void>;
}

async function withAgent(
  cores: number,
  fn: (bench: Bench) => Promise<void>,
  options: { prefetch?: number } = {},
): Promise<void> {
  const queues = new QueueService(QueueStore.open(":memory:"));
  const broker = new Broker();
  const events: TaskEvent[] = [];
  const sink: SubscriberSink = {
    bufferedAmount: 0,
    send: (text) => {
      const frame = JSON.parse(text);
      if (frame.op === "message") events.push(frame.message);
    },
    close: () => {},
  };
  broker.subscribe(sink, ["tasks.>"]);
  const queue: TaskQueue = {
    get: (name, options) => queues.get(name, options),
    ack: (name, id) => Promise.resolve(queues.ack(name, id)),
    nack: (name, id) => Promise.resolve(queues.nack(name, id)),
  };
  const agent = new Agent(queue, {
    publish: (topic, message) => Promise.resolve(broker.publish(topic, message)),
  }, { agentId: "agt-00000001", cores, pollWaitMs: 200, graceMs: 300, ...options });
  agent.start();
  // Every 10 ms at most: a probe may also sample the agent (the most tasks running at once).
  const until = async (check: () => boolean, timeoutMs = 10_000): Promise<void> => {
    await eventually(check, { timeoutMs, intervalMs: 10 }).catch((error: Error) => {
      throw new Error(`${error.message}; events: ${JSON.stringify(events)}`, { cause: error });
    });
  };
  const statesOf = (id: string): string[] => events.filter((e) => e.id === id).map((e) => e.state);
  try {
    await fn({ queues, agent, events, statesOf, until });
  } finally {
    await agent.stop();
    broker.close();
    queues.close();
  }
}

Deno.test("Agent runs 10 tasks on 2 slots, each QUEUED, RUNNING, DONE, and acks them", async () => {
  await withAgent(2, async ({ queues, agent, events, statesOf, until }) => {
    let mostRunning = 0;
    const ids = Array.from({ length: 10 }, (_, i) => `tsk-${i}`);
    for (const id of ids) {
      queues.put("tasks", { id, executable: "/bin/sleep", args: ["0.1"] });
    }
    await until(() => {
      mostRunning = Math.max(mostRunning, agent.status().running.length);
      return ids.every((id) => statesOf(id).at(-1) === "DONE");
    });
    for (const id of ids) assert.deepEqual(statesOf(id), ["QUEUED", "RUNNING", "DONE"]);
    assert.ok(mostRunning <= 2, `at most 2 run at once (saw ${mostRunning})`);
    assert.ok(events.every((e) => e.agent === "agt-00000001"));
    assert.deepEqual(queues.stats("tasks"), {
      name: "tasks",
      ready: 0,
      inflight: 0,
      capacity: 10_000,
    });
    assert.deepEqual(agent.status(), { slots: 2, free: 2, running: [], queued: [] });
  });
});

Deno.test("Agent reports a failing task FAILED with its exit code and tail", async () => {
  await withAgent(1, async ({ queues, events, until }) => {
    queues.put("tasks", { id: "tsk-ls", executable: "/bin/ls", args: ["/nonexistent-dir"] });
    queues.put("tasks", { id: "tsk-bad", executable: 42 });
    queues.put("tasks", { id: "tsk-wide", executable: "/bin/true", cores: 2 });
    const final = (id: string) => events.find((e) => e.id === id && e.state === "FAILED");
    await until(() => ["tsk-ls", "tsk-bad", "tsk-wide"].every((id) => final(id)));
    assert.notEqual(final("tsk-ls")!.exitCode, 0);
    assert.match(final("tsk-ls")!.tail ?? "", /nonexistent-dir/);
    assert.match(final("tsk-bad")!.reason ?? "", /Invalid task field "executable"/);
    assert.match(final("tsk-wide")!.reason ?? "", /needs 2 cores but this agent has 1/);
    await until(() => queues.stats("tasks").inflight === 0);
  });
});

Deno.test("Agent.cancel() ends a running task CANCELED and a waiting one too", async () => {
  await withAgent(2, async ({ queues, agent, statesOf, until }) => {
    queues.put("tasks", { id: "tsk-long", executable: "/bin/sleep", args: ["30"] });
    // Needs both cores, so it waits for tsk-long.
    queues.put("tasks", { id: "tsk-next", executable: "/bin/sleep", args: ["30"], cores: 2 });
    await until(() => agent.status().running.includes("tsk-long"));
    await until(() => agent.status().queued.includes("tsk-next"));
    assert.equal(agent.cancel("tsk-next"), true);
    assert.equal(agent.cancel("tsk-long"), true);
    assert.equal(agent.cancel("tsk-elsewhere"), false);
    await until(() => statesOf("tsk-long").at(-1) === "CANCELED");
    await until(() => statesOf("tsk-next").at(-1) === "CANCELED");
    assert.deepEqual(statesOf("tsk-long"), ["QUEUED", "RUNNING", "CANCELED"]);
    assert.deepEqual(statesOf("tsk-next"), ["QUEUED", "CANCELED"]);
    await until(() => queues.stats("tasks").inflight === 0);
    assert.equal(queues.stats("tasks").ready, 0, "canceled tasks are acknowledged");
  });
});

Deno.test("Agent.stop() kills running tasks and gives their messages back", async () => {
  await withAgent(2, async ({ queues, agent, statesOf, until }) => {
    queues.put("tasks", { id: "tsk-a", executable: "/bin/sleep", args: ["30"] });
    await until(() => agent.status().running.includes("tsk-a"));
    const started = Date.now();
    await agent.stop();
    await agent.stop();
    assert.ok(Date.now() - started < 5000);
    assert.deepEqual(statesOf("tsk-a"), ["QUEUED", "RUNNING", "QUEUED"]);
    assert.deepEqual(queues.stats("tasks"), {
      name: "tasks",
      ready: 1,
      inflight: 0,
      capacity: 10_000,
    });
    assert.equal(agent.cancel("tsk-a"), false);
  });
});

Deno.test("Agent with prefetch 2 holds two tasks beyond its free core, QUEUED and leased", async () => {
  await withAgent(1, async ({ queues, agent, statesOf, until }) => {
    for (let i = 0; i < 5; i++) {
      queues.put("tasks", { id: `tsk-${i}`, executable: "/bin/sleep", args: ["30"] });
    }
    await until(() => agent.status().queued.length === 2);
    // A fixed wait, as the check is that nothing more happens: no third task is taken.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(agent.status(), {
      slots: 1,
      free: 0,
      running: ["tsk-0"],
      queued: ["tsk-1", "tsk-2"],
    });
    assert.deepEqual(statesOf("tsk-1"), ["QUEUED"]);
    assert.deepEqual(queues.stats("tasks"), {
      name: "tasks",
      ready: 2,
      inflight: 3,
      capacity: 10_000,
    });
    assert.equal(agent.cancel("tsk-0"), true);
    await until(() => agent.status().running[0] === "tsk-1" && agent.status().queued.length === 2);
    assert.deepEqual(agent.status().queued, ["tsk-2", "tsk-3"], "a freed core takes one more");
  }, { prefetch: 2 });
});

Deno.test("Agent without prefetch takes a task only while a core is free", async () => {
  await withAgent(1, async ({ queues, agent, until }) => {
    for (let i = 0; i < 3; i++) {
      queues.put("tasks", { id: `tsk-${i}`, executable: "/bin/sleep", args: ["30"] });
    }
    await until(() => agent.status().running.length === 1);
    // A fixed wait, as the check is that nothing more happens: no task is prefetched.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(agent.status().queued, []);
    assert.equal(queues.stats("tasks").inflight, 1);
  }, { prefetch: 0 });
});

Deno.test("Agent.stop() gives prefetched tasks back too, at once", async () => {
  await withAgent(1, async ({ queues, agent, statesOf, until }) => {
    for (let i = 0; i < 3; i++) {
      queues.put("tasks", { id: `tsk-${i}`, executable: "/bin/sleep", args: ["30"] });
    }
    await until(() => agent.status().queued.length === 2);
    await agent.stop();
    assert.deepEqual(statesOf("tsk-0"), ["QUEUED", "RUNNING", "QUEUED"]);
    assert.deepEqual(statesOf("tsk-1"), ["QUEUED", "QUEUED"]);
    assert.deepEqual(statesOf("tsk-2"), ["QUEUED", "QUEUED"]);
    assert.deepEqual(queues.stats("tasks"), {
      name: "tasks",
      ready: 3,
      inflight: 0,
      capacity: 10_000,
    });
  }, { prefetch: 2 });
});

Deno.test("Agent refuses a prefetch outside 0-100", () => {
  const queue: TaskQueue = {
    get: () => Promise.resolve([]),
    ack: () => Promise.resolve(),
    nack: () => Promise.resolve(),
  };
  const events = { publish: () => Promise.resolve() };
  for (const prefetch of [-1, 101, 1.5]) {
    assert.throws(
      () => new Agent(queue, events, { agentId: "agt-00000001", cores: 1, prefetch }),
      RangeError,
    );
  }
});

Deno.test("agentSettings() defaults prefetch to the cores and checks its range", () => {
  const base = { queue: "que-00000001", pubsub: "pub-00000001" };
  assert.equal(agentSettings({ ...base, cores: "3" }).prefetch, 3);
  assert.equal(agentSettings({ ...base, cores: "500" }).prefetch, 100);
  assert.equal(agentSettings({ ...base, cores: "3", prefetch: "0" }).prefetch, 0);
  assert.throws(() => agentSettings({ ...base, prefetch: "101" }), RangeError);
});

Deno.test("Agent runs and acknowledges tasks while its event sink never answers", async () => {
  const queues = new QueueService(QueueStore.open(":memory:"));
  const queue: TaskQueue = {
    get: (name, options) => queues.get(name, options),
    ack: (name, id) => Promise.resolve(queues.ack(name, id)),
    nack: (name, id) => Promise.resolve(queues.nack(name, id)),
  };
  let published = 0;
  // A pub/sub that is away: no publish ever settles.
  const events = {
    publish: () => {
      published++;
      return new Promise<unknown>(() => {});
    },
  };
  const agent = new Agent(queue, events, {
    agentId: "agt-00000001",
    cores: 2,
    pollWaitMs: 200,
    graceMs: 300,
  });
  agent.start();
  try {
    for (let i = 0; i < 6; i++) queues.put("tasks", { id: `tsk-${i}`, executable: "/bin/true" });
    await eventually(() => {
      const stats = queues.stats("tasks");
      if (stats.ready + stats.inflight > 0) {
        throw new Error(`Tasks stalled: ${JSON.stringify(stats)}`);
      }
      return true;
    }, { timeoutMs: 20_000, what: "every task run and acknowledged" });
    assert.equal(published, 18, "QUEUED, RUNNING and DONE of 6 tasks were handed to the sink");
  } finally {
    await agent.stop();
    queues.close();
  }
});

Deno.test("Agent gives a task's cores back when its process is gone, before its final report and ack are answered", async () => {
  const queues = new QueueService(QueueStore.open(":memory:"));
  let open: () => void = () => {};
  const gate = new Promise<void>((resolve) => open = resolve);
  const reported: string[] = [];
  const queue: TaskQueue = {
    get: (name, options) => queues.get(name, options),
    ack: (name, id) => Promise.resolve(queues.ack(name, id)),
    nack: (name, id) => Promise.resolve(queues.nack(name, id)),
    // The queue takes no final report until the gate opens.
    report: async (_name, id, report) => {
      reported.push(`${id} ${report.state}`);
      if (report.state !== "RUNNING") await gate;
    },
  };
  const agent = new Agent(queue, { publish: () => Promise.resolve() }, {
    agentId: "agt-00000001",
    cores: 1,
    pollWaitMs: 200,
  });
  agent.start();
  try {
    queues.put("tasks", { id: "tsk-1", executable: "/bin/true" });
    queues.put("tasks", { id: "tsk-2", executable: "/bin/true" });
    await eventually(() => reported.includes("tsk-2 DONE"), { what: "tsk-2 run on the one core" });
    assert.ok(reported.includes("tsk-1 DONE"));
    assert.deepEqual(agent.status(), { slots: 1, free: 1, running: [], queued: [] });
    assert.equal(agent.cancel("tsk-1"), false, "a task whose process is gone cannot be canceled");
    assert.equal(queues.stats("tasks").inflight, 2, "neither is acknowledged before its report");
    open();
    await eventually(() => queues.stats("tasks").inflight === 0, { what: "both acknowledged" });
  } finally {
    open();
    await agent.stop();
    queues.close();
  }
});
