/**
 * Forgetting ended records (issue 12, item 4): the pure rule, the registry's
 * `removed` event and `DELETE /v1/registry/services/{id}`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { decideForget, ENDED_STATES } from "../../src/registry/state_machine.ts";
import { Registry } from "../../src/registry/registry.ts";
import { revocationPage, revokeService } from "../../src/registry/revocations.ts";
import { registryRoutes } from "../../src/registry/routes.ts";
import { SqliteStore } from "../../src/registry/sqlite_store.ts";
import { NotEndedError, UnknownServiceError } from "../../src/registry/store.ts";
import { FabricError } from "../../src/types/errors.ts";
import { type RegistryEvent, SERVICE_STATES } from "../../src/types/mod.ts";
import { MAX_CERT_SECONDS } from "../../src/crypto/certificate.ts";
import { serviceRecord } from "../_fixtures.ts";

async function withRegistry(fn: (registry: Registry) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const registry = new Registry(SqliteStore.open(join(dir, "r.db")));
  try {
    await fn(registry);
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("decideForget() allows exactly STOPPED, FAILED and LOST records", () => {
  assert.throws(() => decideForget(undefined, "spw-gone"), UnknownServiceError);
  for (const state of SERVICE_STATES) {
    const record = serviceRecord("spw-a", { state });
    if (ENDED_STATES.includes(state)) assert.equal(decideForget(record, "spw-a"), record);
    else assert.throws(() => decideForget(record, "spw-a"), NotEndedError, state);
  }
  assert.deepEqual([...ENDED_STATES].sort(), ["FAILED", "LOST", "STOPPED"]);
});

Deno.test("NotEndedError says what to do and answers 409", () => {
  const error = new NotEndedError("spw-a", "ALIVE");
  assert.equal(error.httpStatus, 409);
  assert.match(error.message, /is ALIVE, not ended: .*"fabricd stop spw-a"/);
});

Deno.test("Registry.forget() removes an ended record and tells watchers with a removed event", async () => {
  await withRegistry(async (registry) => {
    await registry.put(serviceRecord("spw-a", { parent: "spw-p", state: "LAUNCHING" }), "up");
    await registry.put(serviceRecord("spw-b"), "up");
    await registry.transition("spw-a", { incarnation: 1, to: "STOPPED", reason: "stop" });
    const events: RegistryEvent[] = [];
    const stop = registry.onChange((event) => events.push(event));
    await assert.rejects(() => registry.forget("spw-b"), NotEndedError);
    const removed = await registry.forget("spw-a");
    stop();
    assert.equal(removed.state, "STOPPED");
    assert.deepEqual(events.map((e) => [e.kind, e.record.id, e.record.state]), [
      ["removed", "spw-a", "STOPPED"],
    ]);
    assert.deepEqual((await registry.list()).map((r) => r.id), ["spw-b"]);
    const feed = registry.feed(0, 1 << 20);
    const again = (await feed.next())!.event;
    feed.close();
    assert.deepEqual(
      [again.kind, again.record.id],
      ["transition", "spw-b"],
      "a forgotten record is not replayed",
    );
  });
});

Deno.test("registryRoutes() DELETE /registry/services/{id} answers 200, 409 or 404", async () => {
  await withRegistry(async (registry) => {
    const app = new Hono();
    app.route("/v1", registryRoutes(() => registry));
    app.onError((error, c) => {
      const status = error instanceof HTTPException
        ? error.status
        : error instanceof FabricError
        ? error.httpStatus
        : 500;
      return c.json({ error: error.message }, status as 400);
    });
    await registry.put(serviceRecord("spw-a", { parent: "spw-p", state: "LAUNCHING" }), "up");
    const del = async (id: string): Promise<[number, Record<string, unknown>]> => {
      const answer = await app.request(`/v1/registry/services/${id}`, { method: "DELETE" });
      return [answer.status, await answer.json()];
    };
    const [refused, refusal] = await del("spw-a");
    assert.equal(refused, 409);
    assert.match(String(refusal.error), /fabricd stop spw-a/);
    await registry.transition("spw-a", { incarnation: 1, to: "STOPPED", reason: "stop" });
    const [ok, body] = await del("spw-a");
    assert.equal(ok, 200);
    assert.equal((body.record as { id: string }).id, "spw-a");
    assert.equal((await del("spw-a"))[0], 404);
    assert.equal((await del("Bad_ID"))[0], 400);
  });
});

Deno.test("Registry.forget() keeps a revocation in the full list for the longest certificate life", async () => {
  const dir = await Deno.makeTempDir();
  let now = 1_000_000;
  const registry = new Registry(SqliteStore.open(join(dir, "r.db")), { now: () => now });
  try {
    await registry.put(serviceRecord("spw-a", { parent: "spw-p", state: "LAUNCHING" }), "up");
    await registry.put(serviceRecord("spw-b"), "up");
    await registry.transition("spw-b", { incarnation: 1, to: "STOPPED", reason: "stop" });
    await revokeService(registry, "spw-a", "stolen key");
    const before = (await revocationPage(registry)).revoked;
    assert.deepEqual(before, [
      { id: "spw-a", incarnation: 1, cascade: true },
      { id: "spw-b", incarnation: 1 },
    ]);
    await registry.forget("spw-a");
    await registry.forget("spw-b");
    // A service starting now fetches the full list: the forgotten ones are still refused.
    assert.deepEqual((await revocationPage(registry)).revoked, before);
    now += MAX_CERT_SECONDS * 1000 - 1;
    assert.equal((await revocationPage(registry)).revoked.length, 2);
    now += 1;
    assert.deepEqual((await revocationPage(registry)).revoked, [], "every certificate has expired");
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Registry.forget() right after a revoke keeps the revocation in the changes a service reads", async () => {
  const dir = await Deno.makeTempDir();
  const registry = new Registry(SqliteStore.open(join(dir, "r.db")));
  try {
    await registry.put(serviceRecord("spw-a", { parent: "spw-p", state: "LAUNCHING" }), "up");
    await registry.put(serviceRecord("spw-b"), "up");
    // A running service has read every change so far, then the operator revokes and forgets.
    const seen = (await revocationPage(registry, 0)).seq;
    assert.equal(seen, registry.lastSeq);
    await revokeService(registry, "spw-a", "stolen key");
    await registry.forget("spw-a");
    const page = await revocationPage(registry, seen);
    assert.deepEqual(page.revoked, [{ id: "spw-a", incarnation: 1, cascade: true }]);
    assert.equal(page.seq, registry.lastSeq, "caught up with the mark: no fetch at every beat");
    const next = await revocationPage(registry, page.seq);
    assert.deepEqual(next.revoked, [], "read once");
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("revokeService() refuses a root service with 409 and changes nothing", async () => {
  const dir = await Deno.makeTempDir();
  const registry = new Registry(SqliteStore.open(join(dir, "r.db")));
  try {
    await registry.put(serviceRecord("spw-a"), "up");
    await assert.rejects(
      () => revokeService(registry, "spw-a", "stolen key"),
      (e: Error & { httpStatus?: number }) =>
        e.httpStatus === 409 && /is a root service .*"fabricd rotate"/.test(e.message),
    );
    assert.equal((await registry.get("spw-a"))?.state, "ALIVE");
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});
