import assert from "node:assert/strict";
import { createApp } from "../../src/api/app.ts";
import type { ServiceHandlers, SpawnCallOptions } from "../../src/api/service_handlers.ts";
import {
  generateFabricKeys,
  ReplayCache,
  signRequest,
  verifyStreamResponse,
} from "../../src/crypto/mod.ts";
import { SpawnFailedError } from "../../src/types/errors.ts";
import type { ServiceStatus, SpawnResult } from "../../src/types/mod.ts";
import type { SpawnRequest } from "../../src/types/wire.ts";

const keys = await generateFabricKeys();
const SERVICE = "spw-00000001";
const RESULT: SpawnResult = { id: "spw-00000002", endpoint: "http://127.0.0.1:1", state: "ALIVE" };

type SpawnFake = (request: SpawnRequest, options?: SpawnCallOptions) => Promise<SpawnResult>;

function appWith(spawn: SpawnFake) {
  const unused = () => Promise.reject(new Error("not used"));
  const handlers: ServiceHandlers = {
    status: () => ({ id: SERVICE } as ServiceStatus),
    bootstrap: unused,
    configure: unused,
    spawn,
    openSession: unused,
    closeSession: unused,
    connect: unused,
    stop: unused,
    renew: unused,
    ready: unused,
  };
  return createApp({
    serviceId: SERVICE,
    keys: () => keys,
    replayCache: new ReplayCache(),
    handlers,
  });
}

/** A signed `POST /v1/spawn`, with `accept`; the answer, its verdict as a stream and its events. */
async function postSpawn(app: ReturnType<typeof createApp>, accept: string) {
  const url = new URL("/v1/spawn", "http://fabric.test");
  const body = new TextEncoder().encode(JSON.stringify({ role: "spawner" }));
  const headers = new Headers({ accept, "content-type": "application/json" });
  const signed = await signRequest({ method: "POST", url, headers, body }, keys, {
    target: SERVICE,
  });
  const answer = await app.request(url, { method: "POST", headers: signed.headers, body });
  const verdict = await verifyStreamResponse(
    { status: answer.status, headers: answer.headers },
    { publicKey: keys.publicKey, fingerprint: keys.fingerprint, requestNonce: signed.nonce },
  );
  const text = await answer.text();
  const events = text.split("\n\n").filter((block) => block.trim() !== "").map((block) => {
    const lines = block.split("\n");
    const event = lines.find((l) => l.startsWith("event: "))?.slice(7) ?? "";
    const data = lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
    return { event, data: data ? JSON.parse(data) : null };
  });
  return { answer, verdict, events, text };
}

Deno.test("POST /v1/spawn with Accept text/event-stream streams signed progress then the result", async () => {
  const app = appWith((_request, options) => {
    options?.onProgress?.({ step: "prepare", detail: "ssh://node1" });
    options?.onProgress?.({ step: "copy", detail: "node1", bytes: 5, total: 10 });
    return Promise.resolve(RESULT);
  });
  const { answer, verdict, events } = await postSpawn(app, "text/event-stream");
  assert.equal(answer.status, 200);
  assert.equal(answer.headers.get("content-type"), "text/event-stream");
  assert.equal(answer.headers.has("content-digest"), false);
  assert.equal(verdict.ok, true, verdict.ok ? "" : verdict.reason);
  assert.deepEqual(events, [
    { event: "progress", data: { step: "prepare", detail: "ssh://node1" } },
    { event: "progress", data: { step: "copy", detail: "node1", bytes: 5, total: 10 } },
    { event: "result", data: RESULT },
  ]);
});

Deno.test("POST /v1/spawn streamed ends with an error event carrying the error answer and its status", async () => {
  const app = appWith((_request, options) => {
    options?.onProgress?.({ step: "launch", detail: "spw-00000002" });
    return Promise.reject(new SpawnFailedError("spw-00000002", "Spawn failed: exit 77", 77));
  });
  const { answer, verdict, events } = await postSpawn(app, "text/event-stream");
  assert.equal(answer.status, 200);
  assert.equal(verdict.ok, true);
  assert.deepEqual(events, [
    { event: "progress", data: { step: "launch", detail: "spw-00000002" } },
    {
      event: "error",
      data: { error: "Spawn failed: exit 77", id: "spw-00000002", exitCode: 77, status: 502 },
    },
  ]);
});

Deno.test("POST /v1/spawn without the stream Accept answers 201 JSON and asks for no progress", async () => {
  let asked: SpawnCallOptions | undefined = { onProgress: () => {} };
  const app = appWith((_request, options) => {
    asked = options;
    return Promise.resolve(RESULT);
  });
  const { answer, text } = await postSpawn(app, "application/json");
  assert.equal(answer.status, 201);
  assert.match(answer.headers.get("content-type") ?? "", /^application\/json/);
  assert.deepEqual(JSON.parse(text), RESULT);
  assert.equal(asked?.onProgress, undefined);
});
