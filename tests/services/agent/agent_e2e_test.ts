/**
 * The agent role as real processes: a local fabric with a queue, a pub/sub
 * and an agent runs tasks put on the queue and reports them over pub/sub; a
 * SIGKILLed agent is restarted under its ID and its tasks, running or
 * prefetched, run again (at least once); an agent whose queue and pub/sub
 * services were SIGKILLed and restarted opens its sockets to them again.
 */
import assert from "node:assert/strict";
import type { TaskEvent } from "../../../src/services/agent/task.ts";
import { PubsubClient } from "../../../src/client/pubsub_client.ts";
import { QueueClient } from "../../../src/client/queue_client.ts";
import type { ServiceRecord, SpawnResult } from "../../../src/types/mod.ts";
import { withLocalFabric } from "../../e2e/_fabric.ts";
import { eventually } from "../../_eventually.ts";

Deno.test({
  name: "agentRole runs queued tasks, reports them over pubsub and reruns a task after SIGKILL",
  fn: async () => {
    await withLocalFabric(async (local) => {
      const spawn = (role: string, options: Record<string, string> = {}) =>
        local.client.call<SpawnResult>(local.spawner, {
          method: "POST",
          path: "/v1/spawn",
          body: { role, options },
        });
      const queueService = await spawn("queue");
      const pubsubService = await spawn("pubsub");
      const pubsub = new PubsubClient(
        local.keys,
        { id: pubsubService.id, url: pubsubService.endpoint },
        { client: local.client },
      );
      const events: TaskEvent[] = [];
      const subscription = await pubsub.subscribe(["tasks.>"], {
        onEvent: (event) => {
          if (event.op === "message") events.push(event.message as TaskEvent);
        },
      });
      try {
        const agentService = await spawn("agent", {
          queue: queueService.id,
          pubsub: pubsubService.id,
          cores: "2",
          visibilityMs: "4000",
          graceMs: "500",
        });
        const queue = new QueueClient(local.client, {
          id: queueService.id,
          url: queueService.endpoint,
        });
        const ids = Array.from({ length: 20 }, (_, i) => `tsk-true-${i}`);
        for (const id of ids) await queue.put("tasks", { id, executable: "/bin/true" });
        const last = (id: string) => events.filter((e) => e.id === id).at(-1);
        await eventually(
          () => ids.every((id) => last(id)?.state === "DONE"),
          { timeoutMs: 30_000 },
        );
        for (const id of ids) {
          assert.deepEqual(events.filter((e) => e.id === id).map((e) => e.state), [
            "QUEUED",
            "RUNNING",
            "DONE",
          ]);
          assert.equal(last(id)!.exitCode, 0);
          assert.equal(last(id)!.agent, agentService.id);
        }

        const recordOf = async (): Promise<ServiceRecord> =>
          (await local.registry.get(agentService.id))!.record;
        const before = await recordOf();
        assert.equal(before.incarnation, 1);
        // tsk-sleep takes both cores; the agent prefetches the next two (prefetch
        // defaults to its 2 cores), which wait on it, taken but not started.
        await queue.put("tasks", {
          id: "tsk-sleep",
          executable: "/bin/sleep",
          args: ["5"],
          cores: 2,
        });
        const waiting = ["tsk-wait-1", "tsk-wait-2"];
        for (const id of waiting) await queue.put("tasks", { id, executable: "/bin/true" });
        await eventually(
          () =>
            last("tsk-sleep")?.state === "RUNNING" &&
            waiting.every((id) => last(id)?.state === "QUEUED"),
          { timeoutMs: 15_000 },
        );
        // The last of the 20 tasks may still have its ack on the way: its cores were given
        // back before it (docs/services.md), so wait for it rather than for a moment.
        await eventually(async () => {
          assert.deepEqual(await queue.stats("tasks"), {
            name: "tasks",
            ready: 0,
            inflight: 3,
            capacity: 10_000,
          });
          return true;
        }, { timeoutMs: 5_000, what: "the three tasks, and only them, in flight" });
        Deno.kill(before.pid, "SIGKILL");
        const after = await eventually(async () => {
          const r = await recordOf();
          return r.state === "ALIVE" && r.incarnation === 2 ? r : undefined;
        }, { timeoutMs: 30_000 });
        assert.notEqual(after.pid, before.pid);
        await eventually(
          () => last("tsk-sleep")?.state === "DONE",
          { timeoutMs: 40_000 },
        );
        const states = events.filter((e) => e.id === "tsk-sleep").map((e) => e.state);
        assert.deepEqual(states, ["QUEUED", "RUNNING", "QUEUED", "RUNNING", "DONE"]);
        await eventually(
          () => waiting.every((id) => last(id)?.state === "DONE"),
          { timeoutMs: 15_000 },
        );
        for (const id of waiting) {
          assert.deepEqual(
            events.filter((e) => e.id === id).map((e) => [e.state, e.agent]),
            [
              ["QUEUED", agentService.id],
              ["QUEUED", agentService.id],
              ["RUNNING", agentService.id],
              [
                "DONE",
                agentService.id,
              ],
            ],
            `${id} was taken by the killed agent, never started, and ran after the restart`,
          );
        }
        await eventually(async () => {
          const stats = await queue.stats("tasks");
          return stats.ready + stats.inflight === 0;
        }, { timeoutMs: 10_000 });
      } finally {
        await subscription.close();
      }
    }, { heartbeatMs: 500 });
  },
});

Deno.test({
  name: "agentRole opens its sockets again after its queue and pubsub were SIGKILLed and restarted",
  fn: async () => {
    await withLocalFabric(async (local) => {
      const spawn = (role: string, options: Record<string, string> = {}) =>
        local.client.call<SpawnResult>(local.spawner, {
          method: "POST",
          path: "/v1/spawn",
          body: { role, options },
        });
      const record = async (id: string): Promise<ServiceRecord> =>
        (await local.registry.get(id))!.record;
      const queueService = await spawn("queue");
      const pubsubService = await spawn("pubsub");
      const events: TaskEvent[] = [];
      const subscribe = (target: { id: string; url: string }) =>
        new PubsubClient(local.keys, target, { client: local.client }).subscribe(["tasks.>"], {
          onEvent: (event) => {
            if (event.op === "message") events.push(event.message as TaskEvent);
          },
        });
      let subscription = await subscribe({ id: pubsubService.id, url: pubsubService.endpoint });
      try {
        await spawn("agent", { queue: queueService.id, pubsub: pubsubService.id, cores: "1" });
        const done = (id: string) =>
          eventually(
            () => events.some((e) => e.id === id && e.state === "DONE"),
            { timeoutMs: 30_000 },
          );
        await new QueueClient(local.client, { id: queueService.id, url: queueService.endpoint })
          .put("tasks", { id: "tsk-before", executable: "/bin/true" });
        await done("tsk-before");

        const restarted = await Promise.all([queueService.id, pubsubService.id].map(async (id) => {
          const before = await record(id);
          Deno.kill(before.pid, "SIGKILL");
          return await eventually(async () => {
            const r = await record(id);
            return r.state === "ALIVE" && r.incarnation === 2 ? r : undefined;
          }, { timeoutMs: 30_000 });
        }));
        const [queueAfter, pubsubAfter] = restarted as [ServiceRecord, ServiceRecord];
        await subscription.close();
        subscription = await subscribe({ id: pubsubAfter.id, url: pubsubAfter.endpoint });
        await new QueueClient(local.client, { id: queueAfter.id, url: queueAfter.endpoint })
          .put("tasks", { id: "tsk-after", executable: "/bin/true" });
        await done("tsk-after");
      } finally {
        await subscription.close();
      }
    }, { heartbeatMs: 500 });
  },
});

Deno.test({
  name:
    "agentRole keeps running and acknowledging tasks while its pubsub is SIGKILLed and stays away",
  fn: async () => {
    await withLocalFabric(async (local) => {
      const spawn = (role: string, options: Record<string, string> = {}) =>
        local.client.call<SpawnResult>(local.spawner, {
          method: "POST",
          path: "/v1/spawn",
          body: { role, options },
        });
      const queueService = await spawn("queue");
      const pubsubService = await spawn("pubsub");
      await spawn("agent", {
        queue: queueService.id,
        pubsub: pubsubService.id,
        cores: "2",
        graceMs: "500",
      });
      const queue = new QueueClient(local.client, {
        id: queueService.id,
        url: queueService.endpoint,
      });
      const drained = () =>
        eventually(async () => {
          const stats = await queue.stats("tasks");
          return stats.ready + stats.inflight === 0;
        }, { timeoutMs: 30_000 });
      for (let i = 0; i < 4; i++) {
        await queue.put("tasks", { id: `tsk-before-${i}`, executable: "/bin/true" });
      }
      await drained();
      // Kill the pub/sub for good: its record says STOPPED first, so nobody
      // restarts it and the agent finds no ALIVE pub/sub for the rest of the test.
      const pubsub = (await local.registry.get(pubsubService.id))!.record;
      await local.registry.transition(pubsub.id, {
        incarnation: pubsub.incarnation,
        to: "STOPPED",
        reason: "test: the pub/sub goes away",
      });
      Deno.kill(pubsub.pid, "SIGKILL");
      for (let i = 0; i < 20; i++) {
        await queue.put("tasks", {
          id: `tsk-away-${i}`,
          executable: "/bin/sleep",
          args: ["0.05"],
        });
      }
      await drained();
      assert.equal((await local.registry.get(pubsub.id))!.record.state, "STOPPED");
    }, { heartbeatMs: 500 });
  },
});
