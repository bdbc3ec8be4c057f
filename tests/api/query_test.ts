/**
 * A single-valued query parameter given more than once is refused with 400,
 * not read by its first value; a comma-separated list refuses empty items.
 */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { generateFabricKeys, signRequest } from "../../src/crypto/mod.ts";
import { Registry } from "../../src/registry/registry.ts";
import { registryRoutes } from "../../src/registry/routes.ts";
import { SqliteStore } from "../../src/registry/sqlite_store.ts";
import { agentRoutes } from "../../src/services/agent/routes.ts";
import { Broker } from "../../src/services/pubsub/mod.ts";
import { queueApp } from "../services/queue/_app.ts";
import { keys as pubsubKeys, pubsubApp, SERVICE as PUBSUB_ID } from "../services/pubsub/_served.ts";
import { roleApp } from "./_role_app.ts";

const keys = await generateFabricKeys();
const REGISTRY_ID = "reg-00000001";

/** The error a repeated `name` is answered with. */
function repeated(name: string): string {
  return `Query parameter "${name}" is given more than once: give it once`;
}

/** A signed GET of `path`; a body that is not JSON (a stream) is cancelled, not read. */
async function get(
  app: Hono,
  signer: typeof keys,
  target: string,
  path: string,
): Promise<{ status: number; error?: string }> {
  const url = new URL(path, "http://fabric.test");
  const signed = await signRequest(
    { method: "GET", url, headers: new Headers(), body: new Uint8Array() },
    signer,
    { target },
  );
  const answer = await app.request(url, { headers: signed.headers });
  if (!answer.headers.get("content-type")?.includes("application/json")) {
    await answer.body?.cancel();
    return { status: answer.status };
  }
  return { status: answer.status, error: (await answer.json()).error };
}

Deno.test("a queue service answers 400 for a repeated query parameter of messages, tasks and logs", async () => {
  const q = await queueApp();
  const agent = roleApp("agt-00000001", keys, agentRoutes(() => null));
  try {
    const cases: [string, string][] = [
      ["/v1/queue/q/messages?wait=1&wait=99999999", "wait"],
      ["/v1/queue/q/messages?max=1&max=1", "max"],
      ["/v1/queue/q/tasks?limit=1&limit=5000", "limit"],
      ["/v1/queue/q/tasks?state=DONE&state=BOGUS", "state"],
      ["/v1/logs?since=1&since=abc", "since"],
      ["/v1/logs?follow=0&follow=1", "follow"],
    ];
    for (const [path, name] of cases) {
      assert.deepEqual(await get(q.app, q.keys, "que-00000001", path), {
        status: 400,
        error: repeated(name),
      }, path);
    }
    assert.deepEqual(
      await get(agent, keys, "agt-00000001", "/v1/agent/tasks/t1/logs?max=1&max=2"),
      {
        status: 400,
        error: repeated("max"),
      },
    );
    // A bad value is named as every service names it (docs/protocol.md 5.1).
    assert.match(
      (await get(q.app, q.keys, "que-00000001", "/v1/queue/q/tasks?limit=0")).error ?? "",
      /^Invalid query "limit": /,
    );
    assert.match(
      (await get(agent, keys, "agt-00000001", "/v1/agent/tasks/t1/logs?max=0")).error ?? "",
      /^Invalid query "max": /,
    );
    assert.equal(
      (await get(q.app, q.keys, "que-00000001", "/v1/queue/q/messages?wait=1")).status,
      200,
    );
    assert.equal(
      (await get(q.app, q.keys, "que-00000001", "/v1/queue/q/tasks?limit=1")).status,
      200,
    );
  } finally {
    q.close();
  }
});

Deno.test("the registry answers 400 for a repeated query parameter of its list, revocations and watch", async () => {
  const registry = new Registry(SqliteStore.open(":memory:"));
  const app = roleApp(REGISTRY_ID, keys, registryRoutes(() => registry));
  try {
    const cases: [string, string][] = [
      ["/v1/registry/services?role=queue&role=bogus", "role"],
      ["/v1/registry/services?state=ALIVE&state=ALIVE", "state"],
      ["/v1/registry/services?under=svc-11111111&under=x", "under"],
      ["/v1/registry/revocations?since=1&since=x", "since"],
      ["/v1/registry/watch?since=1&since=x", "since"],
    ];
    for (const [path, name] of cases) {
      assert.deepEqual(await get(app, keys, REGISTRY_ID, path), {
        status: 400,
        error: repeated(name),
      }, path);
    }
    const listed = await get(app, keys, REGISTRY_ID, "/v1/registry/services?role=queue,pubsub");
    assert.equal(listed.status, 200);
  } finally {
    await registry.close();
  }
});

Deno.test("a comma-separated list parameter with an empty item answers 400 naming it", async () => {
  const registry = new Registry(SqliteStore.open(":memory:"));
  const app = roleApp(REGISTRY_ID, keys, registryRoutes(() => registry));
  const broker = new Broker();
  const pubsub = pubsubApp(() => broker);
  const empty = (name: string) =>
    `Invalid query "${name}": an item of the list is empty: ` +
    "give comma-separated values without empty ones";
  try {
    for (const query of ["role=queue,,", "role=,queue", "role=", "state=ALIVE,"]) {
      const name = query.split("=")[0]!;
      assert.deepEqual(await get(app, keys, REGISTRY_ID, `/v1/registry/services?${query}`), {
        status: 400,
        error: empty(name),
      }, query);
    }
    for (const query of ["topics=a,,b", "topics=a&topics=", "topics=a,%20"]) {
      assert.deepEqual(await get(pubsub, pubsubKeys, PUBSUB_ID, `/v1/pubsub/ws?${query}`), {
        status: 400,
        error: empty("topics"),
      }, query);
    }
    assert.deepEqual(
      await get(pubsub, pubsubKeys, PUBSUB_ID, "/v1/pubsub/ws?topics=a&batch=1&batch=0"),
      {
        status: 400,
        error: repeated("batch"),
      },
    );
  } finally {
    broker.close();
    await registry.close();
  }
});
