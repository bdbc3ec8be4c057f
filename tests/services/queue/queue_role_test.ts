import assert from "node:assert/strict";
import type { RoleConfig, RoleContext, RoleDeps } from "../../../src/runtime/role.ts";
import { StateLostError } from "../../../src/types/errors.ts";
import {
  queueRole,
  queueSettings,
  queueStorePath,
} from "../../../src/services/queue/queue_role.ts";
import { ServiceMetrics } from "../../../src/metrics/service_metrics.ts";
import { MAX_REPORTED_QUEUES, ReportedQueues } from "../../../src/services/queue/_queue_metrics.ts";
import { QUEUE_LIMITS } from "../../../src/types/queue_wire.ts";

// The queue role uses neither the keys nor the registry.
const deps = {} as RoleDeps;

function config(dir: string, patch: Partial<RoleConfig> = {}): RoleContext {
  return {
    ...deps,
    serviceId: "que-0000abcd",
    role: "queue",
    dir,
    endpoint: "http://127.0.0.1:9",
    options: {},
    incarnation: 1,
    ...patch,
  };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fabricd-queue-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("queueRole.start() opens queue-<ID>.db and serves its routes until stop()", async () => {
  await withDir(async (dir) => {
    const handle = await queueRole.start(config(dir, { options: { capacity: "7" } }));
    const routes = handle.routes!;
    try {
      await Deno.stat(queueStorePath(dir, "que-0000abcd"));
      const answer = await routes.request("/queue/jobs");
      assert.deepEqual(await answer.json(), { name: "jobs", ready: 0, inflight: 0, capacity: 7 });
    } finally {
      await handle.stop();
      await handle.stop();
    }
    assert.equal((await routes.request("/queue/jobs")).status, 503, "stopped: 503 again");
  });
});

Deno.test("queueRole.start() throws StateLostError when a restarted queue's store is missing", async () => {
  await withDir(async (dir) => {
    await assert.rejects(queueRole.start(config(dir, { incarnation: 2 })), StateLostError);
  });
});

Deno.test("queueRole.start() picks up the old store when restarted under its ID", async () => {
  await withDir(async (dir) => {
    const first = await queueRole.start(config(dir));
    const routes = first.routes!;
    const put = await routes.request("/queue/jobs/messages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ payload: "kept" }),
    });
    assert.equal(put.status, 201);
    await first.stop();
    const second = await queueRole.start(config(dir, { incarnation: 2 }));
    try {
      const got = await (await second.routes!.request("/queue/jobs/messages")).json();
      assert.deepEqual(got.messages.map((m: { payload: unknown }) => m.payload), ["kept"]);
    } finally {
      await second.stop();
    }
  });
});

Deno.test("queueRole declares propagate: a lost queue's messages cannot be made up", () => {
  assert.equal(queueRole.replacement, "propagate");
});

Deno.test("queueSettings() reads capacity, maxWaiters and the history's retention and refuses other values", () => {
  assert.deepEqual(queueSettings({}), {
    capacity: QUEUE_LIMITS.defaultCapacity,
    maxWaiters: QUEUE_LIMITS.defaultMaxWaiters,
    historyDays: 7,
    historyMax: 10_000,
  });
  assert.deepEqual(
    queueSettings({ capacity: "5", maxWaiters: "2", historyDays: "0", historyMax: "3" }),
    { capacity: 5, maxWaiters: 2, historyDays: 0, historyMax: 3 },
  );
  for (const bad of ["0", "-1", "1.5", "lots", ""]) {
    assert.throws(() => queueSettings({ capacity: bad }), /Invalid queue option capacity/);
  }
  assert.throws(() => queueSettings({ historyMax: "-1" }), /Invalid queue option historyMax/);
});

Deno.test("queueRole.start() throws StateLostError naming the file and what to do when a restarted queue's store is empty", async () => {
  await withDir(async (dir) => {
    const path = queueStorePath(dir, "que-0000abcd");
    await Deno.writeFile(path, new Uint8Array());
    await assert.rejects(queueRole.start(config(dir, { incarnation: 2 })), (error: unknown) => {
      assert.ok(error instanceof StateLostError, String(error));
      assert.ok(error.message.includes(`"${path}" is empty`), error.message);
      assert.match(error.message, /restore the file from a backup/);
      assert.match(error.message, /"fabricd forget que-0000abcd"/);
      assert.match(error.message, /"fabricd spawn --role queue"/);
      return true;
    });
    assert.equal((await Deno.stat(path)).size, 0, "no schema was written into it");
  });
});

/** The `fabricd_queue_depth` lines of one scrape of `metrics`. */
async function depthLines(metrics: ServiceMetrics): Promise<string[]> {
  return (await metrics.text()).split("\n").filter((l) => l.startsWith("fabricd_queue_depth{"));
}

/** Sends `method` `path` with a JSON `body` to `routes`, and the answer's JSON. */
async function call(
  routes: NonNullable<Awaited<ReturnType<typeof queueRole.start>>["routes"]>,
  path: string,
  body?: unknown,
): Promise<Record<string, unknown>> {
  const answer = await routes.request(path, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  assert.ok(answer.ok, `${path}: ${answer.status}`);
  return await answer.json();
}

Deno.test("queueRole reports fabricd_queue_depth 0 for a queue that drained, and nothing before any queue is seen", async () => {
  await withDir(async (dir) => {
    const metrics = new ServiceMetrics();
    const handle = await queueRole.start({ ...config(dir), metrics });
    const routes = handle.routes!;
    try {
      assert.deepEqual(await depthLines(metrics), [], "an idle queue service has no sample");
      await call(routes, "/queue/jobs/messages", { payload: 1 });
      assert.deepEqual(await depthLines(metrics), [
        'fabricd_queue_depth{queue="jobs",state="ready"} 1',
        'fabricd_queue_depth{queue="jobs",state="inflight"} 0',
      ]);
      const got = await call(routes, "/queue/jobs/messages?max=1");
      const [message] = got.messages as { id: string }[];
      await call(routes, `/queue/jobs/messages/${message!.id}/ack`, {});
      assert.deepEqual(await depthLines(metrics), [
        'fabricd_queue_depth{queue="jobs",state="ready"} 0',
        'fabricd_queue_depth{queue="jobs",state="inflight"} 0',
      ], "a drained queue reads 0, its series kept");
    } finally {
      await handle.stop();
    }
  });
});

Deno.test("queueRole reports fabricd_queue_depth 0 for a queue drained between two scrapes", async () => {
  await withDir(async (dir) => {
    const metrics = new ServiceMetrics();
    const handle = await queueRole.start({ ...config(dir), metrics });
    const routes = handle.routes!;
    try {
      await call(routes, "/queue/fast/messages", { payload: 1 });
      const got = await call(routes, "/queue/fast/messages?max=1");
      const [message] = got.messages as { id: string }[];
      await call(routes, `/queue/fast/messages/${message!.id}/ack`, {});
      assert.deepEqual(await depthLines(metrics), [
        'fabricd_queue_depth{queue="fast",state="ready"} 0',
        'fabricd_queue_depth{queue="fast",state="inflight"} 0',
      ], "seen at its put, not only at a scrape");
    } finally {
      await handle.stop();
    }
  });
});

Deno.test("ReportedQueues keeps at most MAX_REPORTED_QUEUES names, dropping the one that held a message longest ago", () => {
  const reported = new ReportedQueues();
  for (let i = 0; i <= MAX_REPORTED_QUEUES; i++) reported.see(`q${i}`);
  reported.see("q1");
  const names = [...reported.names()];
  assert.equal(names.length, MAX_REPORTED_QUEUES);
  assert.ok(!names.includes("q0"), "the oldest name is dropped");
  assert.equal(names.at(-1), "q1", "a name seen again is the newest");
  reported.see("new");
  assert.ok(![...reported.names()].includes("q2"), "then the next oldest");
});
