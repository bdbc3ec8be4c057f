/**
 * `fabricd up` watches a root it adopted with a signed status request, not the
 * unsigned health probe: a process that took a dead root's port (another
 * user's, on a shared host) answered `/v1/health` with 200 and kept `up` from
 * ever starting the root again.
 */
import assert from "node:assert/strict";
import { answersSigned } from "../../src/cli/_root_keeper.ts";
import { FabricClient } from "../../src/client/fabric_client.ts";
import { generateFabricKeys } from "../../src/crypto/mod.ts";
import { signingApp } from "../api/_signed.ts";

Deno.test("answersSigned() takes only a signed answer of the root, not a squatter's 200", async () => {
  const keys = await generateFabricKeys();
  const client = new FabricClient(keys);
  const squatter = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => Response.json({ ok: true, state: "ALIVE" }),
  );
  const app = signingApp("spw-0b0b0b0b", keys);
  app.get("/v1/status", (c) => c.json({ id: "spw-0b0b0b0b", state: "ALIVE" }));
  const root = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  try {
    const at = (server: Deno.HttpServer<Deno.NetAddr>) => ({
      id: "spw-0b0b0b0b",
      url: `http://127.0.0.1:${server.addr.port}`,
    });
    assert.equal(await answersSigned(client, at(squatter)), false, "the squatter");
    assert.equal(await answersSigned(client, at(root)), true, "the root");
  } finally {
    await squatter.shutdown();
    await root.shutdown();
  }
});
