import assert from "node:assert/strict";
import { createApp } from "../../src/api/app.ts";
import type { ServiceHandlers } from "../../src/api/service_handlers.ts";
import {
  bootstrapTranscript,
  derivePasswordKey,
  generateEphemeralKey,
  generateFabricKeys,
  openBundle,
  passwordHandle,
  proveBootstrap,
  ReplayCache,
} from "../../src/crypto/mod.ts";
import { bundleInfo, KeyHandover } from "../../src/bootstrap/handover.ts";
import { rawPublicKey, type Signer } from "../../src/crypto/certificate.ts";
import { ConflictError } from "../../src/types/errors.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";
import type { ConfigureRequest } from "../../src/types/wire.ts";

const keys = await generateFabricKeys();

function parent() {
  const handover = new KeyHandover({
    keys,
    registries: () => [{ id: "reg-00000001", url: "http://127.0.0.1:1" }],
    self: { id: "spw-00000001", url: "http://127.0.0.1:2" },
  });
  const app = createApp({
    serviceId: "spw-00000001",
    keys: () => keys,
    replayCache: new ReplayCache(),
    handlers: { bootstrap: (r, source) => handover.answer(r, source) } as ServiceHandlers,
  });
  return { handover, app };
}

async function proofBody(id: string, password: string, handle = passwordHandle(password)) {
  const ephemeral = await generateEphemeralKey();
  const signingKey = await rawPublicKey((await generateFabricKeys()).publicKey);
  const endpoint = "http://127.0.0.1:3";
  const passwordKey = derivePasswordKey(password);
  const proof = proveBootstrap(
    passwordKey,
    bootstrapTranscript({ serviceId: id, publicKey: ephemeral.publicKey, endpoint, signingKey }),
  );
  return {
    ephemeral,
    passwordKey,
    body: JSON.stringify({
      id,
      handle,
      publicKey: ephemeral.publicKey,
      signingKey,
      endpoint,
      proof,
      host: "h",
      pid: 7,
    }),
  };
}

/** What the spawn configures a child with, once it has proven its password. */
const CONFIGURE: ConfigureRequest = {
  role: "spawner",
  incarnation: 1,
  parent: "spw-00000001",
  route: ["spw-00000001", "spw-00000002"],
  launcher: "local://",
  endpoint: "http://127.0.0.1:3",
  heartbeatMs: 2000,
  sessions: [],
  options: {},
};

/** A child as the spawn expects it: configured as soon as it arrives. */
function expectConfigured(handover: KeyHandover, id: string) {
  const child = handover.expect(id);
  child.arrived.then(() => child.configure({ ...CONFIGURE, route: ["spw-00000001", id] }));
  return child;
}

Deno.test("POST /v1/bootstrap hands the keys to exactly one of 20 concurrent right proofs", async () => {
  const { handover, app } = parent();
  const child = expectConfigured(handover, "spw-00000002");
  const attempts = await Promise.all(
    Array.from({ length: 20 }, () => proofBody("spw-00000002", child.password)),
  );
  const answers = await Promise.all(attempts.map((a) =>
    app.request("/v1/bootstrap", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: a.body,
    })
  ));
  const won = answers.filter((a) => a.status === 200);
  assert.equal(won.length, 1);
  assert.ok(answers.filter((a) => a.status !== 200).every((a) => a.status === 403));
  const arrival = await child.arrived;
  assert.equal(arrival.pid, 7);
  const winner = attempts[answers.indexOf(won[0]!)]!;
  const bundle = JSON.parse(new TextDecoder().decode(
    await openBundle(await won[0]!.json(), {
      privateKey: winner.ephemeral.privateKey,
      passwordKey: winner.passwordKey,
      info: bundleInfo("spw-00000002"),
    }),
  ));
  assert.equal(bundle.fingerprint, keys.fingerprint);
  assert.equal(bundle.parent.id, "spw-00000001");
  assert.deepEqual(bundle.configure, CONFIGURE, "the answer carries what the child is to be");
});

Deno.test("POST /v1/bootstrap refuses a wrong password with 403 and keeps no keys in the answer", async () => {
  const { handover, app } = parent();
  const child = handover.expect("spw-00000003");
  const wrong = await proofBody("spw-00000003", "not-the-password", passwordHandle(child.password));
  const answer = await app.request("/v1/bootstrap", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: wrong.body,
  });
  assert.equal(answer.status, 403);
  const text = await answer.text();
  assert.doesNotMatch(text, /ciphertext/);
  assert.ok(handover.hasPassword("spw-00000003"), "one bad proof does not burn the password");
});

Deno.test("ExpectedChild.discard() makes the password unusable", async () => {
  const { handover, app } = parent();
  const child = handover.expect("spw-00000004");
  child.discard();
  const late = await proofBody("spw-00000004", child.password);
  const answer = await app.request("/v1/bootstrap", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: late.body,
  });
  assert.equal(answer.status, 403);
  assert.equal(handover.hasPassword("spw-00000004"), false);
});

function post(app: ReturnType<typeof parent>["app"], body: string, source = "192.0.2.1") {
  return app.request("/v1/bootstrap", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  }, { remoteAddr: { transport: "tcp", hostname: source, port: 40000 } });
}

Deno.test("POST /v1/bootstrap answers an unknown handle exactly like a wrong proof, and neither names the ID", async () => {
  const { handover, app } = parent();
  const child = handover.expect("spw-00000005");
  const unknown = await post(app, (await proofBody("spw-00000005", "guess")).body);
  const bad = await post(
    app,
    (await proofBody("spw-00000005", "guess", passwordHandle(child.password))).body,
  );
  const none = await post(app, (await proofBody("spw-00000099", "guess")).body);
  const texts = await Promise.all([unknown, bad, none].map((a) => a.text()));
  assert.deepEqual([unknown.status, bad.status, none.status], [403, 403, 403]);
  assert.equal(texts[0], texts[1]);
  assert.equal(texts[0], texts[2]);
  assert.doesNotMatch(texts[0]!, /spw-/);
});

Deno.test("POST /v1/bootstrap: 1000 wrong proofs for the child's ID leave its password usable, from any source", async () => {
  const { handover, app } = parent();
  const child = expectConfigured(handover, "spw-00000006");
  const statuses = new Set<number>();
  for (let index = 0; index < 1000; index++) {
    const answer = await post(app, (await proofBody("spw-00000006", `guess-${index}`)).body);
    statuses.add(answer.status);
    await answer.body?.cancel();
  }
  assert.deepEqual([...statuses].sort(), [403, 429]);
  assert.equal(handover.hasPassword("spw-00000006"), true);
  // From the flooded address itself: a pending handle is never rate-limited.
  const right = await post(app, (await proofBody("spw-00000006", child.password)).body);
  assert.equal(right.status, 200);
  assert.equal((await child.arrived).pid, 7);
});

Deno.test("POST /v1/bootstrap limits refused attempts per source with 429 and Retry-After, other sources unaffected", async () => {
  const { handover, app } = parent();
  handover.expect("spw-00000007");
  let limited: Response | undefined;
  for (let index = 0; index < 30 && !limited; index++) {
    const answer = await post(
      app,
      (await proofBody("spw-00000007", `g-${index}`)).body,
      "192.0.2.9",
    );
    if (answer.status === 429) limited = answer;
    else await answer.body?.cancel();
  }
  assert.ok(limited, "the source was limited");
  assert.match(limited.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
  await limited.body?.cancel();
  const other = await post(app, (await proofBody("spw-00000007", "g")).body, "192.0.2.10");
  assert.equal(other.status, 403);
  await other.body?.cancel();
});

Deno.test("POST /v1/bootstrap limits every loopback address as one source: another 127.x address gets no fresh burst", async () => {
  const { handover, app } = parent();
  handover.expect("spw-00000008");
  let limited = false;
  for (let index = 0; index < 30 && !limited; index++) {
    const answer = await post(
      app,
      (await proofBody("spw-00000008", `l-${index}`)).body,
      "127.0.0.1",
    );
    limited = answer.status === 429;
    await answer.body?.cancel();
  }
  assert.ok(limited, "127.0.0.1 was limited");
  for (const source of ["127.0.0.2", "127.9.9.9", "::1", "::ffff:127.0.0.3"]) {
    const answer = await post(app, (await proofBody("spw-00000008", "l")).body, source);
    assert.equal(answer.status, 429, source);
    assert.match(
      (await answer.json()).error,
      /^Too many refused bootstrap attempts from loopback: /,
    );
  }
});

/** The signer of a child's ready report, as the signature middleware hands it over. */
function childSigner(id: string, incarnation = 1): Extract<Signer, { kind: "service" }> {
  return {
    kind: "service",
    id,
    role: "spawner",
    incarnation,
    route: ["spw-00000001", id],
    peers: [],
    x25519: "x",
    key: "k",
    expires: 0,
  };
}

const REPORT = { incarnation: 1, instance: "i-1", started: 1700000000000 };

/** Child `id`'s ready report, signed by that child. */
function reportReady(handover: KeyHandover, id: string) {
  return handover.ready(childSigner(id), { id, ...REPORT });
}

Deno.test("KeyHandover.ready() hands the child's report to its spawn and answers with the record the spawn settles", async () => {
  const { handover } = parent();
  const child = handover.expect("spw-00000011");
  const record = { id: "spw-00000011", state: "ALIVE", incarnation: 1 } as ServiceRecord;
  child.ready.then(() => child.settle(record));
  const answer = await reportReady(handover, "spw-00000011");
  assert.equal(answer, record);
  assert.deepEqual(await child.ready, { id: "spw-00000011", ...REPORT });
  // Once only: a second report finds nothing waiting.
  await assert.rejects(reportReady(handover, "spw-00000011"), ConflictError);
});

Deno.test("KeyHandover.ready() refuses a report for another service or incarnation, and one after the spawn ended", async () => {
  const { handover } = parent();
  const child = handover.expect("spw-00000012");
  let reported = false;
  child.ready.then(() => (reported = true), () => {});
  for (
    const [signer, id, incarnation] of [
      [childSigner("spw-00000013"), "spw-00000012", 1],
      [childSigner("spw-00000012"), "spw-00000013", 1],
      [childSigner("spw-00000012", 2), "spw-00000012", 2],
    ] as const
  ) {
    await assert.rejects(
      handover.ready(signer, { id, ...REPORT, incarnation }),
      (error) => error instanceof ConflictError && /waits for it to be ready/.test(error.message),
    );
  }
  assert.equal(reported, false);
  child.discard();
  await assert.rejects(reportReady(handover, "spw-00000012"), ConflictError);
});

Deno.test("KeyHandover.ready() tells the child when its spawn failed after the report", async () => {
  const { handover } = parent();
  const child = handover.expect("spw-00000014");
  child.ready.then(() => child.settle(new Error("registry unreachable")));
  await assert.rejects(
    reportReady(handover, "spw-00000014"),
    (error) => error instanceof ConflictError && /registry unreachable/.test(error.message),
  );
});

Deno.test("POST /v1/bootstrap is refused, nothing sealed, when the spawn ends before it configured the child", async () => {
  const { handover, app } = parent();
  const child = handover.expect("spw-00000015");
  child.arrived.then(() => child.discard());
  const answer = await post(app, (await proofBody("spw-00000015", child.password)).body);
  assert.equal(answer.status, 500);
  assert.doesNotMatch(await answer.text(), /ciphertext/);
});
