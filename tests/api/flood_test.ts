/**
 * A nonce-cache flood (issue 14, item 4): a key holder sends signed requests
 * with the longest lifetime at the highest rate the service takes, until its
 * replay cache overflows many times; requests with the default lifetime sent
 * right after (from the next second of the clock on) must all be accepted.
 * Before, eviction raised a floor on expiry and such requests were refused
 * for as long as the flood's signatures lived.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/api/app.ts";
import type { ServiceHandlers } from "../../src/api/service_handlers.ts";
import { generateFabricKeys, ReplayCache, signRequest } from "../../src/crypto/mod.ts";
import type { ServiceStatus } from "../../src/types/mod.ts";

const SERVICE = "spw-f100d000";

Deno.test("createApp() accepts default-lifetime requests right after a flood of 60 s signatures overflowed its replay cache", async () => {
  const keys = await generateFabricKeys();
  const status = { id: SERVICE } as ServiceStatus;
  const app = createApp({
    serviceId: SERVICE,
    keys: () => keys,
    replayCache: new ReplayCache({ maxEntries: 2_000 }),
    handlers: { status: () => status } as ServiceHandlers,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  const url = `http://127.0.0.1:${server.addr.port}/v1/status`;
  const send = async (expiresInSeconds?: number): Promise<number> => {
    const signed = await signRequest({ method: "GET", url, body: new Uint8Array() }, keys, {
      target: SERVICE,
      ...(expiresInSeconds ? { expiresInSeconds } : {}),
    });
    const answer = await fetch(url, { headers: signed.headers });
    await answer.body?.cancel();
    return answer.status;
  };
  try {
    const flood = 10_000;
    let next = 0;
    const statuses = new Map<number, number>();
    const worker = async () => {
      while (next < flood) {
        next++;
        const status = await send(60);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    };
    const started = Date.now();
    await Promise.all(Array.from({ length: 32 }, worker));
    const rate = Math.round(flood / ((Date.now() - started) / 1000));
    // Only the flood's own second may be refused (its nonces were pushed out).
    assert.deepEqual([...statuses.keys()].filter((s) => s !== 200 && s !== 401), []);
    assert.ok((statuses.get(200) ?? 0) >= 2_000, `flood at ${rate}/s: ${[...statuses]}`);
    // Into the next whole second, past the flood's: the wait is the scenario.
    await new Promise((resolve) => setTimeout(resolve, 1100 - (Date.now() % 1000)));
    const fresh = await Promise.all(Array.from({ length: 200 }, () => send()));
    assert.deepEqual(fresh.filter((s) => s !== 200), [], "fresh requests refused after the flood");
  } finally {
    await server.shutdown();
  }
});
