/**
 * A signer's refusals (403) are audit lines under the same rate limit as the
 * 401s (docs/security.md): a burst, then one a second, the next line saying
 * how many were left out; and each kind has its own budget.
 * @module
 */
import assert from "node:assert/strict";
import { reset } from "@logtape/logtape";
import { captureAuditLines } from "./_audit_lines.ts";
import { createApp, REFUSALS_BURST } from "../../src/api/app.ts";
import type { ServiceHandlers } from "../../src/api/service_handlers.ts";
import { generateFabricKeys, ReplayCache, signRequest } from "../../src/crypto/mod.ts";

const keys = await generateFabricKeys();
const SERVICE = "spw-00000001";

/** An app whose rule refuses every signed request, and the audit lines it logs. */
async function refusingApp() {
  const lines = await captureAuditLines();
  const app = createApp({
    serviceId: SERVICE,
    keys: () => keys,
    replayCache: new ReplayCache(),
    handlers: { status: () => ({ id: SERVICE }) } as unknown as ServiceHandlers,
    rule: () => 'Refused by rule "test": never',
  });
  return { app, lines };
}

async function signedGet(app: ReturnType<typeof createApp>, path: string): Promise<Response> {
  const url = new URL(path, "http://fabric.test");
  const signed = await signRequest(
    { method: "GET", url, headers: new Headers(), body: new Uint8Array() },
    keys,
    { target: SERVICE },
  );
  return await app.request(url, { method: "GET", headers: signed.headers });
}

Deno.test("createApp() logs a signer's 403s in the audit trail, a burst and then one a second", async () => {
  const { app, lines } = await refusingApp();
  try {
    for (let i = 0; i < REFUSALS_BURST + 5; i++) {
      const answer = await signedGet(app, "/v1/status");
      assert.equal(answer.status, 403);
      await answer.body?.cancel();
    }
    const refused = lines.filter((l) => String(l.rawMessage).startsWith("Refused"));
    assert.equal(refused.length, REFUSALS_BURST, "a burst, then one a second");
    assert.equal(refused[0]!.level, "warning");
    assert.equal(refused[0]!.properties.path, "/v1/status");
    assert.equal(refused[0]!.properties.why, 'Refused by rule "test": never');
  } finally {
    await reset();
  }
});

Deno.test("createApp() keeps separate budgets for 401 and 403 audit lines", async () => {
  const { app, lines } = await refusingApp();
  try {
    for (let i = 0; i < REFUSALS_BURST + 5; i++) {
      const answer = await app.request("http://fabric.test/v1/status");
      assert.equal(answer.status, 401);
      await answer.body?.cancel();
    }
    const forbidden = await signedGet(app, "/v1/status");
    assert.equal(forbidden.status, 403);
    await forbidden.body?.cancel();
    const statuses = lines.map((l) => l.properties.status ?? 403);
    assert.equal(statuses.filter((s) => s === 401).length, REFUSALS_BURST);
    assert.equal(
      lines.filter((l) => String(l.rawMessage).startsWith("Refused {method} {path} of")).length,
      1,
      "the 403 is logged although the 401s spent their budget",
    );
  } finally {
    await reset();
  }
});
