import assert from "node:assert/strict";
import {
  bootstrapTranscript,
  derivePasswordKey,
  OneTimePasswords,
  passwordHandle,
  type ProofOutcome,
  proveBootstrap,
  REFUSED_MESSAGE,
} from "../../src/crypto/one_time_password.ts";

const input = {
  serviceId: "svc-1",
  publicKey: "Vq8bnl7yPZ1m7k0vYqJ0sQm1p3vKk2L8o5lA7Zq9y2c",
  endpoint: "http://127.0.0.1:7700",
  signingKey: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
};

function proofFor(password: string, transcript = bootstrapTranscript(input)): string {
  return proveBootstrap(derivePasswordKey(password), transcript);
}

/** What a child claims: the handle of `password`, its ID and the transcript. */
function claim(
  password: string,
  options: { serviceId?: string; transcript?: string } = {},
): { handle: string; serviceId: string; transcript: string } {
  return {
    handle: passwordHandle(password),
    serviceId: options.serviceId ?? "svc-1",
    transcript: options.transcript ?? bootstrapTranscript(input),
  };
}

function reasonOf(outcome: ProofOutcome): string {
  return outcome.ok ? "ok" : outcome.reason;
}

Deno.test("derivePasswordKey() hashes the domain label, a NUL and the password", async () => {
  const password = "aGVsbG8";
  const expected = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`fabricd-otp-v1\0${password}`)),
  );
  assert.deepEqual(derivePasswordKey(password), expected);
  assert.throws(() => derivePasswordKey(""), TypeError);
});

Deno.test("bootstrapTranscript() joins the fields under a version line and refuses line breaks", () => {
  assert.equal(
    bootstrapTranscript(input),
    `fabricd-bootstrap-v2\nsvc-1\n${input.publicKey}\nhttp://127.0.0.1:7700\n${input.signingKey}`,
  );
  assert.throws(() => bootstrapTranscript({ ...input, serviceId: "a\nb" }), TypeError);
  assert.throws(() => bootstrapTranscript({ ...input, endpoint: "http://x\r" }), TypeError);
});

Deno.test("proveBootstrap() gives a base64url HMAC that depends on key and transcript", () => {
  const key = derivePasswordKey("password");
  const proof = proveBootstrap(key, "t");
  assert.match(proof, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(proveBootstrap(key, "t"), proof);
  assert.notEqual(proveBootstrap(key, "u"), proof);
  assert.notEqual(proveBootstrap(derivePasswordKey("other"), "t"), proof);
  assert.throws(() => proveBootstrap(new Uint8Array(16), "t"), TypeError);
});

Deno.test("OneTimePasswords.issue() returns 256 random bits in base64url when called", () => {
  const passwords = new OneTimePasswords();
  const first = passwords.issue("svc-1");
  const second = passwords.issue("svc-2");
  assert.match(first, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(first, second);
  assert.equal(passwords.has("svc-1"), true);
  assert.equal(passwords.size, 2);
  assert.throws(() => passwords.issue(""), TypeError);
  assert.throws(() => passwords.issue("svc-3", { ttlMs: 0 }), RangeError);
});

Deno.test("OneTimePasswords.consume() accepts the right proof once and returns the password key", () => {
  const passwords = new OneTimePasswords();
  const password = passwords.issue("svc-1");
  const outcome = passwords.consume(claim(password), proofFor(password));
  assert.ok(outcome.ok);
  assert.deepEqual(outcome.passwordKey, derivePasswordKey(password));
  assert.equal(passwords.has("svc-1"), false);
  const again = passwords.consume(claim(password), proofFor(password));
  assert.equal(reasonOf(again), "used");
});

Deno.test("OneTimePasswords.consume() lets exactly one of 20 concurrent right proofs through", async () => {
  const passwords = new OneTimePasswords();
  const password = passwords.issue("svc-1");
  const proof = proofFor(password);
  const outcomes = await Promise.all(
    Array.from({ length: 20 }, async () => {
      await Promise.resolve();
      return passwords.consume(claim(password, { transcript: bootstrapTranscript(input) }), proof);
    }),
  );
  const reasons = outcomes.map(reasonOf);
  assert.equal(reasons.filter((reason) => reason === "ok").length, 1);
  assert.equal(reasons.filter((reason) => reason === "used").length, 19);
});

Deno.test("OneTimePasswords.consume() burns the password when the fifth bad proof for its handle arrives", () => {
  const passwords = new OneTimePasswords();
  const password = passwords.issue("svc-1");
  const wrong = proofFor("not the password");
  for (let attempt = 1; attempt <= 4; attempt++) {
    const outcome = passwords.consume(claim(password), wrong);
    assert.equal(reasonOf(outcome), "bad-proof");
    assert.ok(!outcome.ok && outcome.message === REFUSED_MESSAGE);
    assert.equal(passwords.has("svc-1"), true, `usable after ${attempt} bad proofs`);
  }
  const fifth = passwords.consume(claim(password), "not base64url!");
  assert.equal(reasonOf(fifth), "bad-proof");
  assert.ok(!fifth.ok && fifth.message === REFUSED_MESSAGE, "the burn is not announced");
  assert.equal(passwords.has("svc-1"), false);
  assert.equal(reasonOf(passwords.consume(claim(password), proofFor(password))), "burnt");
});

Deno.test("OneTimePasswords.consume() changes nothing when strangers send wrong proofs for the ID without the handle", () => {
  const passwords = new OneTimePasswords();
  const password = passwords.issue("svc-1");
  for (let attempt = 0; attempt < 1_000; attempt++) {
    const handle = passwordHandle(`guess-${attempt}`);
    const outcome = passwords.consume(
      { handle, serviceId: "svc-1", transcript: bootstrapTranscript(input) },
      proofFor(`guess-${attempt}`),
    );
    assert.equal(reasonOf(outcome), "unknown");
    assert.ok(!outcome.ok && outcome.message === REFUSED_MESSAGE, "same answer as a bad proof");
  }
  assert.equal(passwords.has("svc-1"), true);
  assert.equal(reasonOf(passwords.consume(claim(password), proofFor(password))), "ok");
});

Deno.test("OneTimePasswords.consume() counts a right proof claimed for another service ID as a bad proof", () => {
  const passwords = new OneTimePasswords();
  const password = passwords.issue("svc-1");
  const other = bootstrapTranscript({ ...input, serviceId: "svc-2" });
  const outcome = passwords.consume(
    claim(password, { serviceId: "svc-2", transcript: other }),
    proofFor(password, other),
  );
  assert.equal(reasonOf(outcome), "bad-proof");
  assert.equal(reasonOf(passwords.consume(claim(password), proofFor(password))), "ok");
});

Deno.test("passwordHandle() is the first 16 bytes of SHA-256 over the label, a NUL and the password", async () => {
  const password = "aGVsbG8";
  const digest = new Uint8Array(
    await crypto.subtle.digest(
      "SHA-256",
      new TextEncoder().encode(`fabricd-otp-handle-v1\0${password}`),
    ),
  );
  const expected = btoa(String.fromCharCode(...digest.subarray(0, 16))).replace(/=+$/, "")
    .replaceAll("+", "-").replaceAll("/", "_");
  assert.equal(passwordHandle(password), expected);
  assert.match(passwordHandle(password), /^[A-Za-z0-9_-]{22}$/);
  assert.throws(() => passwordHandle(""), TypeError);
});

Deno.test("OneTimePasswords.consume() refuses a proof when it covers another transcript", () => {
  const passwords = new OneTimePasswords();
  const password = passwords.issue("svc-1");
  const swapped = bootstrapTranscript({ ...input, publicKey: "AAAA" });
  const outcome = passwords.consume(claim(password), proofFor(password, swapped));
  assert.equal(reasonOf(outcome), "bad-proof");
});

Deno.test("OneTimePasswords.consume() answers expired when the TTL has passed on the injected clock", () => {
  let now = 1_000_000;
  const passwords = new OneTimePasswords({ now: () => now });
  const password = passwords.issue("svc-1", { ttlMs: 60_000 });
  now += 59_999;
  assert.equal(passwords.has("svc-1"), true);
  now += 1;
  assert.equal(passwords.has("svc-1"), false);
  const outcome = passwords.consume(claim(password), proofFor(password));
  assert.equal(reasonOf(outcome), "expired");
  assert.equal(passwords.size, 0);
  const later = passwords.consume(claim(password), proofFor(password));
  assert.equal(reasonOf(later), "unknown");
});

Deno.test("OneTimePasswords.issue() replaces the earlier password when issued again for an ID", () => {
  const passwords = new OneTimePasswords();
  const old = passwords.issue("svc-1");
  const fresh = passwords.issue("svc-1");
  assert.equal(reasonOf(passwords.consume(claim(old), proofFor(old))), "unknown");
  assert.equal(reasonOf(passwords.consume(claim(fresh), proofFor(fresh))), "ok");
});

Deno.test("OneTimePasswords.discard() forgets the password when the spawn failed", () => {
  const passwords = new OneTimePasswords();
  const password = passwords.issue("svc-1");
  assert.equal(passwords.discard("svc-1"), true);
  assert.equal(passwords.discard("svc-1"), false);
  assert.equal(passwords.has("svc-1"), false);
  const outcome = passwords.consume(claim(password), proofFor(password));
  assert.equal(reasonOf(outcome), "unknown");
});

Deno.test("OneTimePasswords.consume() answers unknown, naming nothing, when no password has the handle", () => {
  const passwords = new OneTimePasswords();
  const outcome = passwords.consume(claim("x", { serviceId: "nobody" }), proofFor("x"));
  assert.equal(reasonOf(outcome), "unknown");
  assert.ok(!outcome.ok && outcome.message === REFUSED_MESSAGE);
});

Deno.test("OneTimePasswords keeps memory bounded when many passwords expire", () => {
  let now = 0;
  const passwords = new OneTimePasswords({ now: () => now });
  for (let index = 0; index < 10_000; index++) {
    passwords.issue(`svc-${index}`, { ttlMs: 10 });
    now += 1;
  }
  assert.ok(passwords.size <= 10);
});
