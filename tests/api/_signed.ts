import { Hono } from "hono";
import { signatures } from "../../src/api/signature_middleware.ts";
import { type FabricKeys, ReplayCache, signRequest, verifyResponse } from "../../src/crypto/mod.ts";

/** An app of service `serviceId` that verifies every request and signs its answers with `keys`. */
export function signingApp(serviceId: string, keys: FabricKeys): Hono {
  const app = new Hono();
  app.use(
    signatures({ serviceId, keys: () => keys, replayCache: new ReplayCache(), unsigned: [] }),
  );
  return app;
}

/** Sends a signed request to `app` without a socket and verifies the signed answer. */
export async function signedRequest(
  app: Hono,
  keys: FabricKeys,
  request: { method: string; path: string; body?: string; target: string; headers?: Headers },
): Promise<
  { status: number; json: Record<string, unknown>; answerVerified: boolean; headers: Headers }
> {
  const url = new URL(request.path, "http://fabric.test");
  const body = new TextEncoder().encode(request.body ?? "");
  const headers = request.headers ?? new Headers();
  if (request.body !== undefined && !headers.has("content-type")) {
    headers.set("content-type", "application/json");
  }
  const signed = await signRequest({ method: request.method, url, headers, body }, keys, {
    target: request.target,
  });
  const answer = await app.request(url, {
    method: request.method,
    headers: signed.headers,
    ...(body.length > 0 ? { body } : {}),
  });
  const bytes = new Uint8Array(await answer.arrayBuffer());
  const verdict = await verifyResponse(
    { status: answer.status, headers: answer.headers, body: bytes },
    { publicKey: keys.publicKey, fingerprint: keys.fingerprint, requestNonce: signed.nonce },
  );
  const text = new TextDecoder().decode(bytes);
  return {
    status: answer.status,
    json: text ? JSON.parse(text) : {},
    answerVerified: verdict.ok,
    headers: signed.headers,
  };
}
