/**
 * A bridge's own 401s are audit lines like the signature check's
 * (docs/protocol.md 2.15), under the same rate limit; a target's 401 relayed
 * back is the target's to log.
 * @module
 */
import assert from "node:assert/strict";
import { reset } from "@logtape/logtape";
import { captureAuditLines } from "./_audit_lines.ts";
import { createApp, REFUSALS_BURST } from "../../src/api/app.ts";
import { bridgeRelay } from "./_bridge.ts";
import { RoleSlot } from "../../src/api/role_slot.ts";
import type { ServiceHandlers } from "../../src/api/service_handlers.ts";
import { generateFabricKeys, ReplayCache, signRequest } from "../../src/crypto/mod.ts";

const keys = await generateFabricKeys();

/** A bridge's app, its relay sending to `hopUrl`, and the audit lines it logs. */
async function bridgeApp(hopUrl: string) {
  const lines = await captureAuditLines();
  const slot = new RoleSlot();
  const app = createApp({
    serviceId: "brg-11111111",
    keys: () => keys,
    replayCache: new ReplayCache(),
    handlers: {} as ServiceHandlers,
    role: slot,
  });
  slot.mount({
    front: bridgeRelay(keys, hopUrl),
  });
  return { app, lines };
}

Deno.test("createApp() logs an audit line for each 401 of the role's relay, rate-limited like its own", async () => {
  const { app, lines } = await bridgeApp("http://127.0.0.1:9");
  try {
    for (let i = 0; i < REFUSALS_BURST + 5; i++) {
      const answer = await app.request("http://fabric.test/v1/status", {
        headers: { "fabric-target": "svc-11111111", "fabric-peer": "10.0.0.7:4242" },
      });
      assert.equal(answer.status, 401);
      await answer.body?.cancel();
    }
    assert.equal(lines.length, REFUSALS_BURST, "a burst, then one a second");
    const first = lines[0]!;
    assert.equal(first.level, "warning");
    assert.equal(first.properties.path, "/v1/status");
    assert.equal(first.properties.peer, "10.0.0.7:4242");
    assert.equal(first.properties.status, 401);
    assert.match(String(first.properties.why), /^Missing Signature-Input header/);
  } finally {
    await reset();
  }
});

Deno.test("createApp() logs no audit line for a target's 401 that its relay passes back", async () => {
  const hop = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => Response.json({ error: "Signature does not verify" }, { status: 401 }),
  );
  const { app, lines } = await bridgeApp(`http://127.0.0.1:${hop.addr.port}`);
  try {
    const url = new URL("http://fabric.test/v1/status");
    const signed = await signRequest({ method: "GET", url, body: new Uint8Array() }, keys, {
      target: "svc-11111111",
    });
    signed.headers.set("fabric-route", "brg-11111111,svc-11111111");
    const answer = await app.request(url, { headers: signed.headers });
    assert.equal(answer.status, 401);
    assert.deepEqual(await answer.json(), { error: "Signature does not verify" });
    assert.equal(lines.length, 0);
  } finally {
    await reset();
    await hop.shutdown();
  }
});
