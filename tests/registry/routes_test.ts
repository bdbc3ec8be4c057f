/**
 * `PUT /v1/registry/services/{id}` takes only endpoints a client could name
 * elsewhere (issue 14, item 6): "" or `http(s)://HOST:PORT`, no user info,
 * path, CR or LF. A refused record is not stored.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Hono } from "hono";
import { Registry } from "../../src/registry/registry.ts";
import { registryRoutes } from "../../src/registry/routes.ts";
import { SqliteStore } from "../../src/registry/sqlite_store.ts";
import { serviceRecord } from "../_fixtures.ts";

async function withRoutes(fn: (app: Hono, registry: Registry) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const registry = new Registry(SqliteStore.open(join(dir, "r.db")));
  const app = new Hono();
  app.route("/v1", registryRoutes(() => registry));
  app.onError((error, c) => c.json({ error: error.message }, 400));
  try {
    await fn(app, registry);
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function put(app: Hono, id: string, endpoint: string): Promise<Response> | Response {
  return app.request(`/v1/registry/services/${id}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ record: serviceRecord(id, { endpoint }), reason: "test" }),
  });
}

Deno.test("registryRoutes() PUT refuses endpoints other than http(s)://HOST:PORT with 400 and stores nothing", async () => {
  await withRoutes(async (app, registry) => {
    const bad = [
      "javascript:alert(1)",
      "http://user:pw@127.0.0.1:80",
      "http://127.0.0.1:80/path",
      "http://127.0.0.1:80\r\nX-Injected: 1",
      "http://127.0.0.1:80\n",
      "ftp://127.0.0.1:21",
      "http://127.0.0.1",
      "http://exa mple:80",
    ];
    for (const endpoint of bad) {
      const answer = await put(app, "spw-0000bad0", endpoint);
      const body = await answer.json();
      assert.equal(answer.status, 400, JSON.stringify(endpoint));
      assert.match(body.error, /record\.endpoint/);
      assert.equal(await registry.get("spw-0000bad0"), undefined, "nothing stored");
    }
  });
});

Deno.test("registryRoutes() PUT stores a record whose endpoint is empty or http(s)://HOST:PORT", async () => {
  await withRoutes(async (app, registry) => {
    const good: [string, string][] = [
      ["spw-00000001", ""],
      ["spw-00000002", "http://127.0.0.1:7700"],
      ["spw-00000003", "https://node-1.cluster.example:443"],
      ["spw-00000004", "http://[::1]:7700"],
    ];
    for (const [id, endpoint] of good) {
      const answer = await put(app, id, endpoint);
      await answer.body?.cancel();
      assert.equal(answer.status, 200, endpoint);
      assert.equal((await registry.get(id))?.endpoint, endpoint);
    }
  });
});

function putBody(app: Hono, id: string, record: unknown): Promise<Response> | Response {
  return app.request(`/v1/registry/services/${id}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ record, reason: "test" }),
  });
}

Deno.test("registryRoutes() PUT stores a record sent without options with options {}", async () => {
  await withRoutes(async (app, registry) => {
    const { options: _options, ...withoutOptions } = serviceRecord("spw-00000005");
    const answer = await putBody(app, "spw-00000005", withoutOptions);
    const body = await answer.json();
    assert.equal(answer.status, 200);
    assert.deepEqual(body.record.options, {});
    assert.deepEqual((await registry.get("spw-00000005"))?.options, {});
  });
});

Deno.test("registryRoutes() PUT refuses unknown fields and values over the record's limits", async () => {
  await withRoutes(async (app, registry) => {
    const id = "spw-0000bad1";
    const bad: Record<string, unknown>[] = [
      { extra: 1 },
      { host: "h".repeat(254) },
      { parent: "p".repeat(64) },
      { lastFailure: "f".repeat(2001) },
      { route: Array.from({ length: 65 }, () => id) },
      { incarnation: 0 },
      { instance: "not an instance" },
      // An own "__proto__" key, as JSON.parse makes it.
      { options: JSON.parse('{"__proto__":"x"}') },
    ];
    for (const patch of bad) {
      const answer = await putBody(app, id, { ...serviceRecord(id), ...patch });
      await answer.body?.cancel();
      assert.equal(answer.status, 400, JSON.stringify(patch).slice(0, 60));
    }
    assert.equal(await registry.get(id), undefined, "nothing stored");
  });
});

Deno.test("registryRoutes() answers an unknown service with the registry's one 404 message, on a read and a report", async () => {
  await withRoutes(async (app) => {
    const expected =
      'No service "spw-0000dead" in the registry: check the ID with "fabricd status"';
    for (
      const [method, path, body] of [
        ["GET", "/v1/registry/services/spw-0000dead", undefined],
        ["POST", "/v1/registry/services/spw-0000dead/reports", { incarnation: 1, reason: "x" }],
      ] as const
    ) {
      const answer = await app.request(path, {
        method,
        headers: { "content-type": "application/json" },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      assert.equal((await answer.json()).error, expected, `${method} ${path}`);
    }
  });
});
