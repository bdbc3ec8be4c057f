import assert from "node:assert/strict";
import type { RoleConfig, RoleContext, RoleDeps } from "../../../src/runtime/role.ts";
import { StateLostError } from "../../../src/types/errors.ts";
import {
  queueRole,
  queueSettings,
  queueStorePath,
} from "../../../src/services/queue/queue_role.ts";
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
