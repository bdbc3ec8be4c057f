/**
 * Routes every service has: health, bootstrap, configure, ready, spawn, status,
 * sessions, connect, logs and stop.
 * @module
 */
import type { SignatureVariables } from "./signature_middleware.ts";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { streamSSE } from "hono/streaming";
import type { Context } from "hono";
import { FabricError, SpawnFailedError } from "../types/errors.ts";
import type { SpawnRequest } from "../types/wire.ts";
import { followLog, readLogTail } from "../config/log_file.ts";
import { checkRoleOptions, RoleOptionsError } from "../types/role_options.ts";
import {
  bootstrapRequestSchema,
  configureRequestSchema,
  connectRequestSchema,
  readyRequestSchema,
  sessionIdSchema,
  spawnRequestSchema,
  stopRequestSchema,
} from "../types/wire.ts";
import type { ServiceHandlers } from "./service_handlers.ts";
import { jsonBody, validParam } from "./validate.ts";
import { singleQuery } from "./query.ts";
import { clearInterval, setInterval } from "../base/timers.ts";
import { peerOf } from "./http_front.ts";

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
  app.post("/ready", jsonBody(readyRequestSchema), async (c) => {
    return c.json(await handlers.ready(c.get("signer"), c.req.valid("json")));
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
    if (c.req.header("accept")?.includes("text/event-stream")) {
      return spawnStream(c, request, handlers);
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
  addLogsRoute(app, handlers);
  app.post("/renew", async (c) => c.json(await handlers.renew(c.get("signer"))));
  app.post("/stop", jsonBody(stopRequestSchema), async (c) => {
    const body = c.req.valid("json");
    await handlers.stop(body.reason, body.graceMs);
    return c.json({ state: "STOPPED" });
  });
  return app;
}

/**
 * `GET /v1/logs?since=MS&follow=0|1`: the tail of the service's own log (at
 * most 256 KiB), as JSON, or followed as server-sent events until the client
 * goes (docs/protocol.md 5.2).
 */
function addLogsRoute(
  app: Hono<{ Variables: SignatureVariables }>,
  handlers: ServiceHandlers,
): void {
  app.get("/logs", async (c) => {
    const since = singleQuery(c, "since");
    const follow = singleQuery(c, "follow") ?? "0";
    if (since !== undefined && !/^\d{1,15}$/.test(since)) {
      throw new HTTPException(400, {
        message: 'Invalid query "since": give a time in ms since the epoch',
      });
    }
    if (!["0", "1"].includes(follow)) {
      throw new HTTPException(400, { message: 'Invalid query "follow": give 0 or 1' });
    }
    const noLog = new HTTPException(404, {
      message: "This service has no log file: it was not started by a launcher",
    });
    const path = handlers.logs?.();
    if (path === undefined) throw noLog;
    const tail = await readLogTail(path, { since: since === undefined ? undefined : Number(since) })
      .catch((error) => {
        throw error instanceof Deno.errors.NotFound ? noLog : error;
      });
    if (follow === "0") return c.json({ lines: tail.lines, truncated: tail.truncated });
    return streamSSE(c, async (stream) => {
      const gone = new AbortController();
      stream.onAbort(() => gone.abort());
      const send = async (lines: string[]): Promise<void> => {
        for (const line of lines) await stream.writeSSE({ event: "log", data: line });
      };
      const keepAlive = setInterval(() => void stream.write(": keep-alive\n\n"), 15_000);
      try {
        await send(tail.lines);
        await followLog(path, tail.end, send, { signal: gone.signal });
      } finally {
        clearInterval(keepAlive);
      }
    });
  });
}

/**
 * The streamed form of `POST /v1/spawn` (docs/protocol.md 5.2): one `progress`
 * event per step, then `result` (the spawn answer) or `error` (the error
 * answer's body with its `status`). A client that goes does not stop the spawn.
 */
function spawnStream(
  c: Context,
  request: SpawnRequest,
  handlers: ServiceHandlers,
): Response {
  return streamSSE(c, async (stream) => {
    // Events go out in order; one the client can no longer take is dropped.
    let sent = Promise.resolve();
    const send = (event: string, data: unknown): Promise<void> => {
      sent = sent.then(() => stream.writeSSE({ event, data: JSON.stringify(data) }))
        .catch(() => {});
      return sent;
    };
    const keepAlive = setInterval(
      () => void stream.write(": keep-alive\n\n").catch(() => {}),
      15_000,
    );
    try {
      const result = await handlers.spawn(request, {
        onProgress: (progress) => void send("progress", progress),
      });
      await send("result", result);
    } catch (error) {
      await send("error", errorEvent(error));
    } finally {
      clearInterval(keepAlive);
    }
  });
}

/** A failed spawn as the body (and status) its unstreamed answer would have had. */
function errorEvent(error: unknown): Record<string, unknown> {
  const message = error instanceof Error ? error.message : String(error);
  const status = error instanceof HTTPException
    ? error.status
    : error instanceof FabricError
    ? error.httpStatus
    : 500;
  const body: Record<string, unknown> = { error: message };
  if (error instanceof SpawnFailedError) {
    body.id = error.serviceId;
    body.exitCode = error.childExitCode;
  }
  body.status = status;
  return body;
}

/**
 * The peer a bootstrap attempt is rate-limited as, from the server's
 * connection info (`Deno.serve`'s second argument): its address, every
 * loopback address being one peer as the front counts them ({@linkcode peerOf}),
 * so a local user cannot take a fresh bucket from each of `127.0.0.0/8`.
 */
function sourceOf(env: unknown): string {
  const addr = (env as { remoteAddr?: { hostname?: unknown } } | undefined)?.remoteAddr;
  return typeof addr?.hostname === "string" ? peerOf(addr.hostname) : "unknown";
}
