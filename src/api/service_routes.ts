/**
 * Routes every service has: health, bootstrap, configure, spawn, status,
 * sessions, connect and stop.
 * @module
 */
import type { SignatureVariables } from "./signature_middleware.ts";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { checkRoleOptions, RoleOptionsError } from "../types/role_options.ts";
import {
  bootstrapRequestSchema,
  configureRequestSchema,
  connectRequestSchema,
  sessionIdSchema,
  spawnRequestSchema,
  stopRequestSchema,
} from "../types/wire.ts";
import type { ServiceHandlers } from "./service_handlers.ts";
import { jsonBody, validParam } from "./validate.ts";

/** The common routes, to mount under `/v1`. */
export function serviceRoutes(handlers: ServiceHandlers): Hono<{ Variables: SignatureVariables }> {
  const app = new Hono<{ Variables: SignatureVariables }>();
  app.get("/health", (c) => c.json({ ok: true }));
  app.post("/bootstrap", jsonBody(bootstrapRequestSchema), async (c) => {
    return c.json(await handlers.bootstrap(c.req.valid("json"), sourceOf(c.env)));
  });
  app.post("/configure", jsonBody(configureRequestSchema), async (c) => {
    return c.json(await handlers.configure(c.req.valid("json")));
  });
  app.post("/spawn", jsonBody(spawnRequestSchema), async (c) => {
    const request = c.req.valid("json");
    // A restart keeps the options on record; a new service's are checked
    // before anything is recorded or started (issue 12, item 4).
    if (!request.restart) {
      try {
        checkRoleOptions(request.role, request.options);
      } catch (error) {
        if (!(error instanceof RoleOptionsError)) throw error;
        throw new HTTPException(400, { message: error.message, cause: error });
      }
    }
    return c.json(await handlers.spawn(request), 201);
  });
  app.get("/status", (c) => c.json(handlers.status()));
  app.post("/sessions/:id", async (c) => {
    const session = validParam(c, "id", sessionIdSchema);
    return c.json({ sessions: await handlers.openSession(session) });
  });
  app.delete("/sessions/:id", async (c) => {
    const session = validParam(c, "id", sessionIdSchema);
    return c.json({ sessions: await handlers.closeSession(session) });
  });
  app.post("/connect", jsonBody(connectRequestSchema), async (c) => {
    return c.json(await handlers.connect(c.req.valid("json")));
  });
  app.post("/renew", async (c) => c.json(await handlers.renew(c.get("signer"))));
  app.post("/stop", jsonBody(stopRequestSchema), async (c) => {
    const body = c.req.valid("json");
    await handlers.stop(body.reason, body.graceMs);
    return c.json({ state: "STOPPED" });
  });
  return app;
}

/** The peer's address from the server's connection info (`Deno.serve`'s second argument). */
function sourceOf(env: unknown): string {
  const addr = (env as { remoteAddr?: { hostname?: unknown } } | undefined)?.remoteAddr;
  return typeof addr?.hostname === "string" ? addr.hostname : "unknown";
}
