/**
 * The server of `fabricd ui` (issue 13): a client of the fabric that holds
 * the key (the browser never does). A one-time login URL gives the browser a
 * session cookie; Prometheus gets `/metrics` with the bearer token of
 * `DIR/ui.token`. Every route needs one or the other: loopback is not a trust
 * boundary. Live updates come from one follow of the registry's change
 * stream, fanned out to the open pages over server-sent events.
 * @module
 */
import { type Context, Hono } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { HTTPException } from "hono/http-exception";
import { timingSafeEqual } from "node:crypto";
import { join } from "node:path";
import type { FabricClient } from "../client/fabric_client.ts";
import type { RegistryClient } from "../client/registry_client.ts";
import { targetFor } from "../client/route.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import type { RegistryEvent, SpawnResult } from "../types/mod.ts";
import { mergeExpositions, scrapeFabric } from "./scrape.ts";
import { APP_JS, LOGIN_HTML, PAGE_HTML } from "./_page.ts";

/** What the UI server needs. */
export interface UiServerDeps {
  keys: FabricKeys;
  client: FabricClient;
  registry: RegistryClient;
  /** The fabric's directory: `ui.token` and `logs/` live here. */
  dir: string;
  /** The bearer token of `/metrics` (the content of `DIR/ui.token`). */
  bearer: string;
  /** The one-time login token printed in the login URL. */
  loginToken: string;
}

/** Most pages following the live stream at once (503 above). */
export const MAX_STREAMS = 32;
/** Most browser sessions kept; the oldest is forgotten first. */
const MAX_SESSIONS = 64;
/** Bytes of a service's log shown on click. */
const LOG_TAIL_BYTES = 8192;
const SERVICE_ID = /^[a-z]{3}-[0-9a-f]{8}$/;
const COOKIE = "fabricd_ui";
/** The highest `since` the watch route takes (15 digits): no replay, live changes only. */
const LIVE_ONLY = 999_999_999_999_999;

/** A running UI: the app and what it follows. */
export interface UiServer {
  app: Hono;
  /** Stops following the registry and ends every open stream. */
  close(): void;
}

/** Builds the UI app. */
export function createUiServer(deps: UiServerDeps): UiServer {
  const sessions = new Set<string>();
  let loginToken: string | null = deps.loginToken;
  const streams = new Set<(event: RegistryEvent) => void>();
  const following = new AbortController();
  let lastSeq = 0;
  void followRegistry(deps.registry, following.signal, (event) => {
    if (event.kind === "transition") lastSeq = Math.max(lastSeq, event.seq);
    for (const send of streams) send(event);
  });

  const app = new Hono();
  app.get("/login", (c) => {
    const token = c.req.query("token") ?? "";
    const once = loginToken !== null && same(token, loginToken);
    if (!once && !same(token, deps.bearer)) return c.html(LOGIN_HTML, 401);
    if (once) loginToken = null;
    const session = randomToken();
    sessions.add(session);
    if (sessions.size > MAX_SESSIONS) sessions.delete(sessions.values().next().value!);
    setCookie(c, COOKIE, session, { httpOnly: true, sameSite: "Strict", path: "/" });
    return c.redirect("/", 303);
  });
  app.use("*", async (c, next) => {
    if (authorized(c, sessions, deps.bearer)) return await next();
    if (c.req.path === "/" || c.req.path === "/index.html") return c.html(LOGIN_HTML, 401);
    return c.json({
      error: "Log in with the URL that fabricd ui printed, or send the bearer token of ui.token",
    }, 401);
  });
  app.get("/", (c) => c.html(PAGE_HTML));
  app.get(
    "/app.js",
    (c) => c.body(APP_JS, 200, { "content-type": "text/javascript; charset=utf-8" }),
  );
  app.get("/metrics", async (c) => {
    const records = await deps.registry.list();
    const merged = mergeExpositions(await scrapeFabric(deps.keys, records));
    return c.body(merged, 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  });
  app.get(
    "/api/services",
    async (c) => c.json({ services: await deps.registry.list(), now: Date.now() }),
  );
  app.get("/api/services/:id", async (c) => {
    const id = serviceId(c);
    const found = await deps.registry.get(id);
    if (!found) throw new HTTPException(404, { message: `No service "${id}" in the registry` });
    return c.json({ ...found, log: await logTail(join(deps.dir, "logs", `${id}.log`)) });
  });
  app.get("/api/pilots", async (c) => {
    const records = await deps.registry.list();
    const managers = records.filter((r) => r.role === "pilot-manager" && r.state === "ALIVE");
    const pilots: unknown[] = [];
    for (const manager of managers.slice(0, 16)) {
      const answer = await deps.client.call<{ pilots: unknown[] }>(
        targetFor(manager, records),
        { method: "GET", path: "/v1/pilots" },
        { timeoutMs: 5000 },
      ).catch(() => ({ pilots: [] }));
      pilots.push(
        ...answer.pilots.slice(0, 1000).map((p) => ({ manager: manager.id, ...p as object })),
      );
    }
    return c.json({ pilots });
  });
  app.post("/api/services/:id/:action{restart|stop}", async (c) => {
    // A cross-site form cannot set this header; the cookie is SameSite=Strict too.
    if (c.req.header("x-fabricd-ui") !== "1") {
      throw new HTTPException(403, { message: "Send X-Fabricd-UI: 1 (the page does)" });
    }
    const id = serviceId(c);
    const records = await deps.registry.list();
    const record = records.find((r) => r.id === id);
    if (!record) throw new HTTPException(404, { message: `No service "${id}" in the registry` });
    if (c.req.param("action") === "stop") {
      await deps.client.call(targetFor(record, records), {
        method: "POST",
        path: "/v1/stop",
        body: { reason: "stopped from fabricd ui" },
      });
      return c.json({ id, state: "STOPPED" });
    }
    const parent = records.find((r) => r.id === record.parent);
    if (!parent) {
      throw new HTTPException(409, {
        message: `Service "${id}" is a root service: restart it with "fabricd up"`,
      });
    }
    const result = await deps.client.call<SpawnResult>(targetFor(parent, records), {
      method: "POST",
      path: "/v1/spawn",
      body: { role: record.role, restart: id },
    }, { timeoutMs: 120_000 });
    return c.json(result);
  });
  app.get("/api/events", () => {
    if (streams.size >= MAX_STREAMS) {
      throw new HTTPException(503, { message: `${MAX_STREAMS} pages follow already: close one` });
    }
    const encoder = new TextEncoder();
    let send: ((event: RegistryEvent) => void) | null = null;
    let keepAlive: ReturnType<typeof setInterval> | undefined;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        send = (event) => {
          // A page that does not read is dropped rather than buffered without bound.
          if ((controller.desiredSize ?? 0) < -256) return close();
          controller.enqueue(
            encoder.encode(
              `event: ${event.kind}\nid: ${event.seq}\ndata: ${JSON.stringify(event)}\n\n`,
            ),
          );
        };
        streams.add(send);
        controller.enqueue(encoder.encode(`: since ${lastSeq}\n\n`));
        keepAlive = setInterval(
          () => controller.enqueue(encoder.encode(": keep-alive\n\n")),
          15_000,
        );
        const close = (): void => {
          if (send) streams.delete(send);
          clearInterval(keepAlive);
          try {
            controller.close();
          } catch {
            // Already closed.
          }
        };
        following.signal.addEventListener("abort", close, { once: true });
      },
      cancel() {
        if (send) streams.delete(send);
        clearInterval(keepAlive);
      },
    }, { highWaterMark: 0 });
    return new Response(body, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
    });
  });
  app.onError((error, c) => {
    const status = error instanceof HTTPException ? error.status : 502;
    return c.json({ error: error.message }, status);
  });
  return { app, close: () => following.abort() };
}

/** 32 random bytes, base64url. */
export function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(
    /=+$/,
    "",
  );
}

function authorized(c: Context, sessions: Set<string>, bearer: string): boolean {
  const session = getCookie(c, COOKIE);
  if (session && sessions.has(session)) return true;
  const header = c.req.header("authorization") ?? "";
  return header.startsWith("Bearer ") && same(header.slice(7).trim(), bearer);
}

function same(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

function serviceId(c: Context): string {
  const id = c.req.param("id") ?? "";
  if (!SERVICE_ID.test(id)) {
    throw new HTTPException(400, {
      message: `Invalid service ID "${id.slice(0, 40)}": like spw-1a2b3c4d`,
    });
  }
  return id;
}

async function logTail(path: string): Promise<string> {
  try {
    using file = await Deno.open(path, { read: true });
    const size = (await file.stat()).size;
    await file.seek(Math.max(0, size - LOG_TAIL_BYTES), Deno.SeekMode.Start);
    const buffer = new Uint8Array(Math.min(size, LOG_TAIL_BYTES));
    let read = 0;
    while (read < buffer.length) {
      const n = await file.read(buffer.subarray(read));
      if (n === null) break;
      read += n;
    }
    return new TextDecoder().decode(buffer.subarray(0, read));
  } catch {
    return "";
  }
}

/** Follows the registry's change stream until `signal` aborts, reconnecting after a pause. */
async function followRegistry(
  registry: RegistryClient,
  signal: AbortSignal,
  onEvent: (event: RegistryEvent) => void,
): Promise<void> {
  // Live changes only: a page loads the records first; after a reconnect the
  // changes missed meanwhile are replayed from the last one seen.
  let since = LIVE_ONLY;
  while (!signal.aborted) {
    try {
      await registry.watch(since, (event) => {
        if (event.kind === "transition") since = event.seq;
        onEvent(event);
      }, signal);
    } catch {
      // The registry is away: try again shortly.
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
