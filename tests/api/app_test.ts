import assert from "node:assert/strict";
import fc from "fast-check";
import { createApp } from "../../src/api/app.ts";
import { configureRequestSchema, spawnRequestSchema } from "../../src/types/wire.ts";
import type { ServiceHandlers } from "../../src/api/service_handlers.ts";
import { generateFabricKeys, ReplayCache, signRequest } from "../../src/crypto/mod.ts";
import type { ServiceStatus } from "../../src/types/mod.ts";
import { signedRequest } from "./_signed.ts";

const keys = await generateFabricKeys();
const SERVICE = "spw-00000001";

function fixture() {
  const calls: { name: string; arg: unknown }[] = [];
  const status: ServiceStatus = {
    id: SERVICE,
    role: "spawner",
    state: "ALIVE",
    incarnation: 1,
    host: "h",
    pid: 1,
    endpoint: "http://fabric.test",
    parent: "",
    sessions: [],
    children: [],
    pendingPasswords: 0,
    uptimeMs: 1,
  };
  const record = (name: string) => (arg: unknown) => {
    calls.push({ name, arg });
    return Promise.resolve(undefined as never);
  };
  const handlers: ServiceHandlers = {
    status: () => status,
    bootstrap: record("bootstrap"),
    configure: (arg) => {
      calls.push({ name: "configure", arg });
      return Promise.resolve({ id: SERVICE, role: "spawner", state: "ALIVE", incarnation: 1 });
    },
    spawn: (arg) => {
      calls.push({ name: "spawn", arg });
      return Promise.resolve({ id: "spw-2", endpoint: "http://x", state: "ALIVE" });
    },
    openSession: (s) => {
      calls.push({ name: "openSession", arg: s });
      return Promise.resolve([s]);
    },
    closeSession: record("closeSession") as (s: string) => Promise<string[]>,
    connect: record("connect"),
    stop: record("stop"),
    renew: record("renew"),
    ready: record("ready"),
  };
  const app = createApp({
    serviceId: SERVICE,
    keys: () => keys,
    replayCache: new ReplayCache(),
    handlers,
    maxBodyBytes: 4096,
  });
  return { app, calls };
}

Deno.test("createApp() answers GET /v1/health without a signature", async () => {
  const { app } = fixture();
  const answer = await app.request("/v1/health");
  assert.equal(answer.status, 200);
  assert.deepEqual(await answer.json(), { ok: true });
});

Deno.test("createApp() refuses an unsigned management request with 401 and a reason", async () => {
  const { app, calls } = fixture();
  const answer = await app.request("/v1/spawn", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ role: "spawner" }),
  });
  assert.equal(answer.status, 401);
  assert.match((await answer.json()).error, /Signature/);
  assert.equal(calls.length, 0);
});

Deno.test("createApp() serves a signed request and signs its answer", async () => {
  const { app } = fixture();
  const answer = await signedRequest(app, keys, {
    method: "GET",
    path: "/v1/status",
    target: SERVICE,
  });
  assert.equal(answer.status, 200);
  assert.equal(answer.json.id, SERVICE);
  assert.ok(answer.answerVerified);
});

Deno.test("createApp() refuses a request meant for another service with 401", async () => {
  const { app, calls } = fixture();
  const answer = await signedRequest(app, keys, {
    method: "POST",
    path: "/v1/spawn",
    body: JSON.stringify({ role: "spawner" }),
    target: "spw-99999999",
  });
  assert.equal(answer.status, 401);
  assert.match(String(answer.json.error), /spw-99999999/);
  assert.equal(calls.length, 0);
});

Deno.test("createApp() refuses a replayed request with 401 and runs the handler once", async () => {
  const { app, calls } = fixture();
  const url = new URL("/v1/sessions/s1", "http://fabric.test");
  const signed = await signRequest({ method: "POST", url, body: new Uint8Array() }, keys, {
    target: SERVICE,
  });
  const first = await app.request(url, { method: "POST", headers: signed.headers });
  const second = await app.request(url, { method: "POST", headers: signed.headers });
  assert.equal(first.status, 200);
  assert.equal(second.status, 401);
  assert.match((await second.json()).error, /replay|already used/i);
  assert.equal(calls.filter((c) => c.name === "openSession").length, 1);
});

Deno.test("createApp() refuses a tampered body with 401", async () => {
  const { app, calls } = fixture();
  const url = new URL("/v1/spawn", "http://fabric.test");
  const body = new TextEncoder().encode(JSON.stringify({ role: "spawner" }));
  const headers = new Headers({ "content-type": "application/json" });
  const signed = await signRequest({ method: "POST", url, body, headers }, keys, {
    target: SERVICE,
  });
  const answer = await app.request(url, {
    method: "POST",
    headers: signed.headers,
    body: JSON.stringify({ role: "registry" }),
  });
  assert.equal(answer.status, 401);
  assert.equal(calls.length, 0);
});

Deno.test("createApp() refuses a request signed with another fabric's key", async () => {
  const { app, calls } = fixture();
  const other = await generateFabricKeys();
  const answer = await signedRequest(app, other, {
    method: "GET",
    path: "/v1/status",
    target: SERVICE,
  });
  assert.equal(answer.status, 401);
  assert.equal(calls.length, 0);
});

Deno.test("createApp() answers 400 naming the field when a body is invalid", async () => {
  const { app, calls } = fixture();
  const bad = await signedRequest(app, keys, {
    method: "POST",
    path: "/v1/spawn",
    body: JSON.stringify({ role: "wizard" }),
    target: SERVICE,
  });
  assert.equal(bad.status, 400);
  assert.match(String(bad.json.error), /Invalid field "role"/);
  assert.ok(bad.answerVerified, "errors to signed requests are signed too");
  const notJson = await signedRequest(app, keys, {
    method: "POST",
    path: "/v1/spawn",
    body: "{role:",
    target: SERVICE,
  });
  assert.equal(notJson.status, 400);
  const badSession = await signedRequest(app, keys, {
    method: "POST",
    path: "/v1/sessions/bad%20session",
    target: SERVICE,
  });
  assert.equal(badSession.status, 400);
  assert.match(String(badSession.json.error), /"id"/);
  assert.equal(calls.length, 0);
});

Deno.test("createApp() answers 413 when a body is over the limit", async () => {
  const { app, calls } = fixture();
  const answer = await signedRequest(app, keys, {
    method: "POST",
    path: "/v1/spawn",
    body: JSON.stringify({ role: "spawner", on: "x".repeat(5000) }),
    target: SERVICE,
  });
  assert.equal(answer.status, 413);
  assert.equal(calls.length, 0);
});

Deno.test("createApp() answers 503 to signed requests before the service holds keys", async () => {
  const { app } = fixture();
  const early = createApp({
    serviceId: SERVICE,
    keys: () => null,
    replayCache: new ReplayCache(),
    handlers: {} as ServiceHandlers,
    keysWaitMs: 50,
  });
  const answer = await early.request("/v1/status");
  assert.equal(answer.status, 503);
  assert.ok(app);
});

Deno.test("createApp() lets no malformed body reach a handler (property)", async () => {
  const { app, calls } = fixture();
  const value = fc.oneof(
    fc.jsonValue(),
    fc.record({
      role: fc.oneof(fc.constantFrom("spawner", "registry", "bogus"), fc.jsonValue()),
      on: fc.oneof(fc.string(), fc.jsonValue()),
      sessions: fc.oneof(fc.array(fc.string()), fc.jsonValue()),
      incarnation: fc.oneof(fc.integer(), fc.jsonValue()),
    }, { requiredKeys: [] }),
  );
  await fc.assert(
    fc.asyncProperty(fc.constantFrom("/v1/spawn", "/v1/configure"), value, async (path, body) => {
      calls.length = 0;
      const answer = await signedRequest(app, keys, {
        method: "POST",
        path,
        body: JSON.stringify(body),
        target: SERVICE,
      });
      const schema = path === "/v1/spawn" ? spawnRequestSchema : configureRequestSchema;
      const valid = schema.safeParse(body).success;
      if (valid) {
        assert.ok(answer.status < 300, `valid body refused: ${JSON.stringify(body)}`);
        assert.equal(calls.length, 1);
        assert.ok(schema.safeParse(calls[0]!.arg).success);
      } else {
        assert.equal(answer.status, 400, `invalid body accepted: ${JSON.stringify(body)}`);
        assert.equal(calls.length, 0);
      }
    }),
    { numRuns: 300 },
  );
});

/** A valid configure request. */
const CONFIGURE = {
  role: "spawner",
  incarnation: 1,
  parent: "spw-00000000",
  route: ["spw-00000000", SERVICE],
  launcher: "local://",
  endpoint: "http://127.0.0.1:4000",
  heartbeatMs: 500,
};

Deno.test("createApp() refuses prototype option names and endpoints that are not http(s)://HOST:PORT with 400", async () => {
  const { app, calls } = fixture();
  const configure = CONFIGURE;
  const bodies = [
    '{"__proto__":{"x":"1"}}',
    '{"constructor":"x"}',
    '{"prototype":"x"}',
  ].map((options) => JSON.stringify(configure).replace(/}$/, `,"options":${options}}`));
  for (
    const endpoint of [
      "http://user@127.0.0.1:4000",
      "javascript:alert(1)",
      "http://h:1\r\nx: y",
      "http://h:1/path",
    ]
  ) {
    bodies.push(JSON.stringify({ ...configure, endpoint }));
  }
  for (const body of bodies) {
    const answer = await signedRequest(app, keys, {
      method: "POST",
      path: "/v1/configure",
      body,
      target: SERVICE,
    });
    assert.equal(answer.status, 400, body);
    assert.match(String(answer.json.error), /options|endpoint/, body);
    assert.ok(answer.answerVerified);
  }
  assert.equal(calls.length, 0);
  const good = await signedRequest(app, keys, {
    method: "POST",
    path: "/v1/configure",
    body: JSON.stringify({ ...configure, options: { queue: "que-1" } }),
    target: SERVICE,
  });
  assert.equal(good.status, 200);
});

Deno.test("createApp() answers POST /v1/spawn with unknown or bad role options 400, listing the valid ones, and spawns nothing", async () => {
  const { app, calls } = fixture();
  for (const options of [{ core: "4", queue: "que-1", pubsub: "pub-1" }, { cores: "2" }]) {
    const answer = await signedRequest(app, keys, {
      method: "POST",
      path: "/v1/spawn",
      body: JSON.stringify({ role: "agent", options }),
      target: SERVICE,
    });
    assert.equal(answer.status, 400);
    assert.match(String(answer.json.error), /Invalid options for role agent/);
    assert.match(String(answer.json.error), /Valid options:[\s\S]*visibilityMs=/);
  }
  assert.equal(calls.length, 0);
  const restart = await signedRequest(app, keys, {
    method: "POST",
    path: "/v1/spawn",
    body: JSON.stringify({ role: "agent", restart: "agt-1", options: {} }),
    target: SERVICE,
  });
  assert.equal(restart.status, 201, "a restart keeps the options on record");
});

Deno.test("configureRequestSchema refuses what the service's record could not hold, naming the field", () => {
  const configure = CONFIGURE;
  assert.ok(configureRequestSchema.safeParse(configure).success);
  const tooLong = configureRequestSchema.safeParse({ ...configure, launcher: "x".repeat(2049) });
  assert.deepEqual(tooLong.error?.issues.map((i) => i.path.join(".")), ["launcher"]);
  const route = Array.from({ length: 65 }, (_, i) => `spw-${String(i).padStart(8, "0")}`);
  const deep = configureRequestSchema.safeParse({ ...configure, route });
  assert.deepEqual(deep.error?.issues.map((i) => i.path.join(".")), ["route"]);
});

/** A chunked body of `chunks` pieces of 1 KiB (endless when Infinity) that counts its reads. */
function chunkedBody(chunks: number): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
  let pulled = 0;
  const piece = new TextEncoder().encode(JSON.stringify({ role: "spawner" }).padEnd(1024, " "));
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled >= chunks) return controller.close();
      pulled++;
      controller.enqueue(pulled === 1 ? piece : new Uint8Array(1024).fill(32));
    },
  }, { highWaterMark: 0 });
  return { stream, pulled: () => pulled };
}

Deno.test("createApp() refuses an unsigned chunked request with 401 without reading its body", async () => {
  const { app, calls } = fixture();
  const body = chunkedBody(Infinity);
  const answer = await app.request("http://fabric.test/v1/spawn", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body.stream,
    duplex: "half",
  } as RequestInit);
  assert.equal(answer.status, 401);
  await answer.body?.cancel();
  assert.equal(body.pulled(), 0, "not one chunk of an unsigned body is read");
  assert.equal(calls.length, 0);
});

Deno.test("createApp() answers 413 to a chunked body over the limit once it is read, on signed and unsigned paths", async () => {
  const { app, calls } = fixture();
  const url = new URL("http://fabric.test/v1/spawn");
  const bytes = new Uint8Array(8 * 1024).fill(32);
  const headers = new Headers({ "content-type": "application/json" });
  const signed = await signRequest({ method: "POST", url, headers, body: bytes }, keys, {
    target: SERVICE,
  });
  const body = chunkedBody(8);
  const answer = await app.request(url, {
    method: "POST",
    headers: signed.headers,
    body: body.stream,
    duplex: "half",
  } as RequestInit);
  assert.equal(answer.status, 413);
  assert.match((await answer.json()).error, /Request body is larger than 4096 bytes/);
  assert.ok(body.pulled() <= 5, `read ${body.pulled()} KiB of a 4 KiB limit`);
  const bootstrap = await app.request("http://fabric.test/v1/bootstrap", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: chunkedBody(8).stream,
    duplex: "half",
  } as RequestInit);
  assert.equal(bootstrap.status, 413, "not 400: the JSON reader keeps the bound's answer");
  await bootstrap.body?.cancel();
  assert.equal(calls.length, 0);
});

Deno.test("createApp() answers 413 to a bootstrap body over 16 KiB, before reading it when its length is declared", async () => {
  const { app, calls } = fixture();
  const answer = await app.request("http://fabric.test/v1/bootstrap", {
    method: "POST",
    headers: { "content-type": "application/json", "content-length": String(17 * 1024) },
    body: new Uint8Array(17 * 1024).fill(32),
  });
  assert.equal(answer.status, 413);
  assert.match((await answer.json()).error, /larger than 16384 bytes/);
  assert.equal(calls.length, 0);
});

Deno.test("createApp() reads a body sent without a JSON Content-Type as JSON: 400 Malformed JSON when it is not", async () => {
  const { app, calls } = fixture();
  const post = async (type: string | null, body: string) => {
    const answer = await app.request("http://fabric.test/v1/bootstrap", {
      method: "POST",
      headers: type === null ? {} : { "content-type": type },
      body,
    });
    return { status: answer.status, error: String((await answer.json()).error) };
  };
  // curl -d garbage: form-urlencoded; and no Content-Type, and text/plain.
  for (
    const type of ["application/x-www-form-urlencoded", null, "text/plain", "application/json"]
  ) {
    assert.deepEqual(await post(type, "garbage"), {
      status: 400,
      error: "Malformed JSON in request body",
    }, String(type));
    assert.deepEqual(await post(type, "\xff{"), {
      status: 400,
      error: "Malformed JSON in request body",
    }, String(type));
  }
  // JSON under another Content-Type is validated as sent, not as {}: the answer names what is wrong.
  const sent = await post("application/x-www-form-urlencoded", JSON.stringify({ id: "BAD ID" }));
  assert.equal(sent.status, 400);
  assert.match(sent.error, /^Invalid field "id": /);
  assert.doesNotMatch(sent.error, /required/);
  const partial = await post("text/plain", JSON.stringify({ id: "spw-1a2b3c4d" }));
  assert.equal(partial.error, 'Invalid field "handle": required: give a string');
  assert.equal(calls.length, 0);
  const key = "A".repeat(43);
  const valid = {
    id: "spw-1a2b3c4d",
    handle: "B".repeat(22),
    publicKey: key,
    endpoint: "http://127.0.0.1:8080",
    signingKey: key,
    proof: key,
    host: "h",
    pid: 1,
  };
  await app.request("http://fabric.test/v1/bootstrap", {
    method: "POST",
    headers: { "content-type": "text/plain" },
    body: JSON.stringify(valid),
  });
  assert.deepEqual(calls.map((c) => c.name), ["bootstrap"]);
  assert.deepEqual(calls[0]!.arg, valid);
});
