/**
 * The UI's restart and stop buttons: the refusal of the service or parent
 * asked passes through with its status, and only a service that cannot be
 * reached is a 502.
 */
import assert from "node:assert/strict";
import { type FabricClient, FabricRequestError } from "../../src/client/fabric_client.ts";
import { generateFabricKeys } from "../../src/crypto/mod.ts";
import { createUiServer } from "../../src/ui/ui_server.ts";
import { fakeRegistry } from "../_fake_registry.ts";
import { serviceRecord } from "../_fixtures.ts";

const BEARER = "b".repeat(43);

Deno.test("POST /api/services/ID/restart passes a parent's 409 through, and is 502 only when no one answers", async () => {
  const records = [
    serviceRecord("spw-00000001", { parent: "", route: ["spw-00000001"] }),
    serviceRecord("que-00000002", {
      role: "queue",
      parent: "spw-00000001",
      route: ["spw-00000001", "que-00000002"],
    }),
  ];
  let failure: Error = new FabricRequestError('Service "que-00000002" is ALIVE', 409);
  const client = { call: () => Promise.reject(failure) } as unknown as FabricClient;
  const ui = createUiServer({
    keys: await generateFabricKeys(),
    client,
    registry: fakeRegistry(records).client,
    dir: "/nonexistent",
    bearer: BEARER,
    loginToken: "a".repeat(43),
    sampleMs: 60_000,
  });
  try {
    const restart = () =>
      ui.app.request("/api/services/que-00000002/restart", {
        method: "POST",
        headers: { authorization: `Bearer ${BEARER}`, "x-fabricd-ui": "1" },
      });
    const refused = await restart();
    assert.equal(refused.status, 409);
    assert.match((await refused.json()).error, /is ALIVE/);
    failure = new FabricRequestError('Cannot reach service "spw-00000001"', 0);
    const unreachable = await restart();
    assert.equal(unreachable.status, 502);
    assert.match((await unreachable.json()).error, /Cannot reach/);
  } finally {
    ui.close();
  }
});
