/**
 * `POST /v1/session` (docs/protocol.md 2.13): opens a MAC session for the
 * verified signer of an Ed25519-signed request. Not inside a session: a
 * session cannot vouch for itself.
 * @module
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import * as z from "zod";
import type { MacSessions } from "../crypto/mac_sessions.ts";
import type { SignatureVariables } from "./signature_middleware.ts";
import { jsonBody } from "./validate.ts";

const openSchema = z.strictObject({
  x25519: z.string().regex(/^[A-Za-z0-9_-]{43}$/, "must be a raw X25519 public key, base64url"),
});

/** The route, to mount under `/v1`. */
export function sessionRoute(
  sessions: MacSessions,
  serviceId: string,
): Hono<{ Variables: SignatureVariables }> {
  const app = new Hono<{ Variables: SignatureVariables }>();
  app.post("/session", jsonBody(openSchema), async (c) => {
    if (c.get("session")) {
      throw new HTTPException(409, {
        message: "Open a session with a key-signed request, not inside another session",
      });
    }
    try {
      return c.json(await sessions.open(c.get("signer"), c.req.valid("json").x25519, serviceId));
    } catch (error) {
      throw new HTTPException(400, {
        message: `Invalid field "x25519": ${error instanceof Error ? error.message : error}`,
      });
    }
  });
  return app;
}
