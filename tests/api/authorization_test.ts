/**
 * The audit hook of `authorization()` (docs/protocol.md 2.15): an allowed
 * request that changes the fabric is told once answered; reads (GET, HEAD)
 * and paths that change nothing are not.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { authorization } from "../../src/api/authorization.ts";
import type { SignatureVariables } from "../../src/api/signature_middleware.ts";

Deno.test("authorization() tells onChanged of allowed changes only, never of a GET or HEAD", async () => {
  const changed: string[] = [];
  const app = new Hono<{ Variables: SignatureVariables }>();
  app.use((c, next) => {
    c.set("signer", { kind: "operator" });
    return next();
  });
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
