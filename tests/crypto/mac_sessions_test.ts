import assert from "node:assert/strict";
import { eventually } from "../_eventually.ts";
import { createApp } from "../../src/api/app.ts";
import type { ServiceHandlers } from "../../src/api/service_handlers.ts";
import { FabricClient } from "../../src/client/fabric_client.ts";
import { generateFabricKeys } from "../../src/crypto/keys.ts";
import {
  clientSession,
  freshX25519,
  MacSessions,
  sessionKey,
} from "../../src/crypto/mac_sessions.ts";
import { ReplayCache } from "../../src/crypto/replay_cache.ts";
import { signRequest } from "../../src/crypto/signing.ts";

const keys = await generateFabricKeys();

Deno.test("MacSessions: the client and the service derive the same key, bound to both identities", async () => {
  const sessions = new MacSessions();
  const mine = await freshX25519();
  const answer = await sessions.open({ kind: "operator" }, mine.publicKey, "spw-00000001");
  const client = await clientSession(mine, answer, {
    client: "operator",
    service: "spw-00000001",
    peer: { kind: "operator" },
  });
  assert.deepEqual(client.secret, sessions.get(answer.keyid)!.secret);
  const other = await clientSession(mine, answer, {
    client: "operator",
    service: "spw-00000002",
    peer: { kind: "operator" },
  });
  assert.notDeepEqual(other.secret, client.secret, "another service name gives another key");
  assert.match(answer.keyid, /^mac:[A-Za-z0-9_-]{22}$/);
});

Deno.test("MacSessions forgets an expired session and keeps at most maxSessions", async () => {
  let now = 1_700_000_000_000;
  const sessions = new MacSessions({ maxSessions: 2, now: () => now });
  const a = await sessions.open({ kind: "operator" }, (await freshX25519()).publicKey, "spw-1");
  await sessions.open({ kind: "operator" }, (await freshX25519()).publicKey, "spw-1");
  await sessions.open({ kind: "operator" }, (await freshX25519()).publicKey, "spw-1");
  assert.equal(sessions.size, 2);
  assert.equal(sessions.get(a.keyid), undefined, "the oldest went first");
  const b = await sessions.open({ kind: "operator" }, (await freshX25519()).publicKey, "spw-1");
  assert.ok(sessions.get(b.keyid));
  now += 3_601_000;
  assert.equal(sessions.get(b.keyid), undefined, "expired after an hour");
});

Deno.test("a client with sessions signs its calls with hmac-sha256 after one Ed25519 handshake, and the service answers in the session", async () => {
  const seen: string[] = [];
  const sessions = new MacSessions();
  const app = createApp({
    serviceId: "spw-00000001",
    keys: () => keys,
    replayCache: new ReplayCache(),
    handlers: { status: () => ({ id: "spw-00000001" }) } as unknown as ServiceHandlers,
    sessions,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    seen.push(/alg="([^"]+)"/.exec(request.headers.get("signature-input") ?? "")?.[1] ?? "none");
    return app.fetch(request);
  });
  try {
    const target = { id: "spw-00000001", url: `http://127.0.0.1:${server.addr.port}` };
    const client = new FabricClient(keys, { sessions: true });
    const call = () => client.call(target, { method: "GET", path: "/v1/status" });
    // The first call is signed with the key while the session opens beside it
    // (one handshake); once it is open, calls go in it.
    assert.deepEqual(await call(), { id: "spw-00000001" });
    assert.equal(seen[0], "ed25519");
    await eventually(async () => {
      assert.deepEqual(await call(), { id: "spw-00000001" });
      return seen.at(-1) === "hmac-sha256";
    }, { timeoutMs: 5000, what: "a call in the session" });
    for (let i = 0; i < 2; i++) assert.deepEqual(await call(), { id: "spw-00000001" });
    assert.deepEqual(seen.slice(-3), ["hmac-sha256", "hmac-sha256", "hmac-sha256"]);
    assert.equal(sessions.size, 1, "one handshake only");
  } finally {
    await server.shutdown();
  }
});

Deno.test("a request in an unknown session gets 401, and a handshake inside a session 409", async () => {
  const sessions = new MacSessions();
  const app = createApp({
    serviceId: "spw-00000001",
    keys: () => keys,
    replayCache: new ReplayCache(),
    handlers: { status: () => ({}) } as unknown as ServiceHandlers,
    sessions,
  });
  const forged = {
    keyid: "mac:AAAAAAAAAAAAAAAAAAAAAA",
    secret: new Uint8Array(32),
    expires: 9e9,
    peer: { kind: "operator" as const },
  };
  const url = "http://h/v1/status";
  const signed = await signRequest({ method: "GET", url, body: new Uint8Array() }, keys, {
    target: "spw-00000001",
    session: forged,
  });
  const answer = await app.request(url, { headers: signed.headers });
  assert.equal(answer.status, 401);
  assert.match((await answer.json()).error, /Unknown or expired session/);
  const mine = await freshX25519();
  const opened = await sessions.open({ kind: "operator" }, mine.publicKey, "spw-00000001");
  const session = await clientSession(mine, opened, {
    client: "operator",
    service: "spw-00000001",
    peer: { kind: "operator" },
  });
  const body = new TextEncoder().encode(JSON.stringify({ x25519: mine.publicKey }));
  const inside = await signRequest(
    {
      method: "POST",
      url: "http://h/v1/session",
      headers: new Headers({ "content-type": "application/json" }),
      body,
    },
    keys,
    { target: "spw-00000001", session },
  );
  const again = await app.request("http://h/v1/session", {
    method: "POST",
    headers: inside.headers,
    body,
  });
  assert.equal(again.status, 409);
});

Deno.test("sessionKey() refuses a session opened before a rotation's grace ended once it has ended, and keeps later ones", async () => {
  let now = 1_000_000_000;
  const sessions = new MacSessions({ now: () => now });
  const client = await freshX25519();
  const early = await sessions.open({ kind: "operator" }, client.publicKey, "spw-00000001");
  const trust = { revokedLink: () => undefined, rotation: { until: now / 1000 + 60 } };
  assert.equal(sessionKey(sessions, trust, early.keyid, now).ok, true, "within the grace");
  now += 61_000;
  const late = await sessions.open({ kind: "operator" }, client.publicKey, "spw-00000001");
  const refused = sessionKey(sessions, trust, early.keyid, now);
  assert.equal(refused.ok, false);
  assert.match(
    (refused as { reason: string }).reason,
    /Unknown or expired session: open a new one/,
  );
  assert.equal(sessionKey(sessions, trust, late.keyid, now).ok, true, "opened after the grace");
  assert.equal(sessionKey(sessions, { revokedLink: () => undefined }, early.keyid, now).ok, true);
});
