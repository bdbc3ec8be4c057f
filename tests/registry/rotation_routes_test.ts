/**
 * The registry's rotation routes (docs/protocol.md 2.14) and its audit route
 * (2.15), over `app.request()`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Signer } from "../../src/crypto/certificate.ts";
import { generateFabricKeys } from "../../src/crypto/keys.ts";
import { issueRotation } from "../../src/crypto/rotation.ts";
import { rotationRoutes } from "../../src/registry/rotation_routes.ts";

async function appOf(signer: { value: Signer }, auditLog?: string) {
  const keys = await generateFabricKeys();
  const app = new Hono<{ Variables: { signer: Signer } }>();
  app.use(async (c, next) => {
    c.set("signer", signer.value);
    await next();
  });
  app.route("/v1", rotationRoutes({ keys, ...(auditLog ? { auditLog } : {}) }));
  app.onError((error, c) =>
    c.json({ error: error.message }, error instanceof HTTPException ? error.status : 500)
  );
  return { app, keys };
}

function post(app: Hono<{ Variables: { signer: Signer } }>, statement: string) {
  return app.request("/v1/registry/rotation", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ statement }),
  });
}

const SERVICE: Signer = {
  kind: "service",
  id: "spn-00000001",
  role: "spawner",
  incarnation: 1,
  route: ["spn-00000000", "spn-00000001"],
  peers: [],
  x25519: "",
  key: "",
  expires: Number.MAX_SAFE_INTEGER,
};

Deno.test("rotationRoutes() POST takes the operator's statement once, refuses a service, a bad statement and a second rotation in the grace", async () => {
  const signer: { value: Signer } = { value: { kind: "operator" } };
  const { app, keys } = await appOf(signer);
  const next = await generateFabricKeys();
  const statement = await issueRotation(keys, next, { graceSeconds: 60 });
  signer.value = SERVICE;
  assert.equal((await post(app, statement)).status, 403);
  signer.value = { kind: "operator" };
  assert.equal((await post(app, "fr1.nothing")).status, 400);
  const before = await (await app.request("/v1/registry/rotation")).json();
  assert.deepEqual(before, {
    statement: null,
    root: keys.fingerprint,
    previous: null,
    until: null,
  });
  const taken = await post(app, statement);
  assert.equal(taken.status, 200);
  assert.deepEqual(await taken.json(), { root: next.fingerprint });
  assert.equal((await post(app, statement)).status, 200, "the same statement again is fine");
  const held = await (await app.request("/v1/registry/rotation")).json();
  assert.equal(held.statement, statement);
  assert.equal(held.previous, keys.fingerprint);
  assert.ok(held.until > Date.now());
  const again = await post(app, await issueRotation(next, await generateFabricKeys()));
  assert.equal(again.status, 409);
  assert.match((await again.json()).error, /in its grace until/);
});

Deno.test("rotationRoutes() POST refuses a statement from another root with 409", async () => {
  const { app } = await appOf({ value: { kind: "operator" } });
  const statement = await issueRotation(await generateFabricKeys(), await generateFabricKeys());
  const answer = await post(app, statement);
  assert.equal(answer.status, 409);
  assert.match((await answer.json()).error, /this fabric's root is/);
});

Deno.test("rotationRoutes() GET /registry/audit answers only the log's audit lines, at most limit, and refuses a bad query", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "reg.log");
    const line = (logger: string, message: string, at: string) =>
      JSON.stringify({ "@timestamp": at, level: "WARN", message, logger, properties: {} });
    await Deno.writeTextFile(
      path,
      [
        line("fabricd.audit", "first", "2030-01-01T00:00:00.000Z"),
        line("fabricd.service", "not audit", "2030-01-01T00:00:01.000Z"),
        line("fabricd.audit", "second", "2030-01-01T00:00:02.000Z"),
        line("fabricd.audit", "third", "2030-01-01T00:00:03.000Z"),
      ].join("\n") + "\n",
    );
    const { app } = await appOf({ value: { kind: "operator" } }, path);
    const all = await (await app.request("/v1/registry/audit")).json();
    assert.deepEqual(all.lines.map((l: { message: string }) => l.message), [
      "first",
      "second",
      "third",
    ]);
    const last = await (await app.request("/v1/registry/audit?limit=1")).json();
    assert.deepEqual(last.lines.map((l: { message: string }) => l.message), ["third"]);
    assert.equal(last.truncated, true);
    const since = Date.parse("2030-01-01T00:00:02.000Z");
    const later = await (await app.request(`/v1/registry/audit?since=${since}`)).json();
    assert.equal(later.lines.length, 2);
    assert.equal((await app.request("/v1/registry/audit?limit=x")).status, 400);
    const most = await (await app.request("/v1/registry/audit?limit=1000")).json();
    assert.equal(most.lines.length, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rotationRoutes() GET /registry/audit refuses a limit outside 1 to 1000 with 400, not clamped", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "reg.log");
    await Deno.writeTextFile(path, "");
    const { app } = await appOf({ value: { kind: "operator" } }, path);
    for (const limit of ["0", "1001", "9999", "00", "-1", "1.5", "10000", ""]) {
      const answer = await app.request(`/v1/registry/audit?limit=${limit}`);
      assert.equal(answer.status, 400, `limit=${limit}`);
      assert.deepEqual(await answer.json(), { error: 'Invalid query "limit": give 1 to 1000' });
    }
    for (const limit of ["1", "1000"]) {
      assert.equal((await app.request(`/v1/registry/audit?limit=${limit}`)).status, 200, limit);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
