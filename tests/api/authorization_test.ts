/**
 * The audit hook of `authorization()` (docs/protocol.md 2.15): an allowed
 * request that changes the fabric is told once answered; reads (GET, HEAD)
 * and paths that change nothing are not.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { authorization } from "../../src/api/authorization.ts";
import type { SignatureVariables } from "../../src/api/signature_middleware.ts";

/** An app whose every request comes signed by the operator (as the signature check would set it). */
function operatorApp(): Hono<{ Variables: SignatureVariables }> {
  const app = new Hono<{ Variables: SignatureVariables }>();
  app.use((c, next) => {
    c.set("signer", { kind: "operator" });
    return next();
  });
  return app;
}

Deno.test("authorization() tells onChanged of allowed changes only, never of a GET or HEAD", async () => {
  const changed: string[] = [];
  const app = operatorApp();
  app.use(authorization({
    rule: () => null,
    unsigned: [],
    onChanged: (_signer, request, status) =>
      changed.push(`${request.method} ${request.path} ${status}`),
  }));
  app.all("*", (c) => c.text("ok"));
  for (
    const [method, path] of [
      ["GET", "/v1/registry/services/spw-00000001"],
      ["HEAD", "/v1/registry/services/spw-00000001"],
      ["POST", "/v1/status"],
      ["POST", "/v1/spawn"],
      ["DELETE", "/v1/registry/services/spw-00000001"],
    ] as const
  ) {
    await (await app.request(path, { method })).body?.cancel();
  }
  assert.deepEqual(changed, [
    "POST /v1/spawn 200",
    "DELETE /v1/registry/services/spw-00000001 200",
  ]);
});

Deno.test("authorization() counts a handler's own 403 as a refusal, not as a change", async () => {
  const refused: string[] = [];
  const changed: string[] = [];
  const app = operatorApp();
  app.use(authorization({
    rule: (_signer, request) =>
      request.path === "/v1/stop" ? 'Refused by rule "subtree": no' : null,
    unsigned: [],
    onRefused: (_signer, request, why) => refused.push(`${request.path}: ${why}`),
    onChanged: (_signer, request, status) => changed.push(`${request.path} ${status}`),
  }));
  app.onError((error, c) =>
    c.json({ error: error.message }, (error as { status?: 403 }).status ?? 500)
  );
  app.put(
    "/v1/registry/services/:id",
    (c) => c.json({ error: 'Refused by rule "registry-subtree": not yours' }, 403),
  );
  for (
    const [method, path] of [["POST", "/v1/stop"], ["PUT", "/v1/registry/services/spw-1"]] as const
  ) {
    assert.equal((await app.request(path, { method })).status, 403);
  }
  assert.deepEqual(refused, [
    '/v1/stop: Refused by rule "subtree": no',
    '/v1/registry/services/spw-1: Refused by rule "registry-subtree": not yours',
  ]);
  assert.deepEqual(changed, [], "a refused write is not logged as a change");
});
