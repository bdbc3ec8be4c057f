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
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { sameSecret } from "../crypto/hash.ts";
import { join } from "../base/paths.ts";
import { type FabricClient, FabricRequestError } from "../client/fabric_client.ts";
import type { RegistryClient } from "../client/registry_client.ts";
import { targetFor } from "../client/route.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import type { RegistryEvent, SpawnResult } from "../types/mod.ts";
import { EventFanout } from "./event_fanout.ts";
import { fabricPilots } from "./fabric_pilots.ts";
import { RecordCache } from "./record_cache.ts";
import { mergeExpositions, scrapeFabric } from "./scrape.ts";
import { TaskSampler } from "./task_samples.ts";
import { APP_JS, LOGIN_HTML, PAGE_HTML } from "./_page.ts";
import { setTimeout } from "../base/timers.ts";

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
  /** Time between two samples of the task queue, ms. Default 2000. */
  sampleMs?: number;
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
  /** Stops following the registry and sampling the task queue, and ends every open stream. */
  close(): void;
}

/** Builds the UI app. */
export function createUiServer(deps: UiServerDeps): UiServer {
  const fanout = new EventFanout({ maxStreams: MAX_STREAMS });
  const following = new AbortController();
  const cache = new RecordCache(() => deps.registry.list());
  const sampler = new TaskSampler(deps.keys, () => cache.list(), {
    intervalMs: deps.sampleMs ?? 2000,
  });
  sampler.start();
  void followRegistry(deps.registry, following.signal, (event) => {
    if (event.kind === "removed") cache.remove(event.record.id);
    else cache.apply(event.record);
    fanout.publish(event);
  }, () => cache.invalidate());

  const app = new Hono();
  useLogin(app, deps);
  app.get("/", (c) => c.html(PAGE_HTML));
  app.get(
    "/app.js",
    (c) => c.body(APP_JS, 200, { "content-type": "text/javascript; charset=utf-8" }),
  );
  app.get("/metrics", async (c) => {
    const records = await cache.list();
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
  app.get(
    "/api/pilots",
    async (c) => c.json({ pilots: await fabricPilots(deps.client, await cache.list()) }),
  );
  app.get(
    "/api/tasks",
    (c) => c.json({ intervalMs: sampler.intervalMs, samples: sampler.samples(), now: Date.now() }),
  );
  app.post("/api/services/:id/:action{restart|stop}", async (c) => {
    // A cross-site form cannot set this header; the cookie is SameSite=Strict too.
    if (c.req.header("x-fabricd-ui") !== "1") {
      throw new HTTPException(403, { message: "Send X-Fabricd-UI: 1 (the page does)" });
    }
    return c.json(
      await serviceAction(
        deps,
        serviceId(c),
        c.req.param("action") === "stop" ? "stop" : "restart",
      ),
    );
  });
  app.get("/api/events", () => fanout.open());
  app.onError((error, c) => {
    // A refusal of the service or parent asked (4xx) passes through; else 502.
    const refused = error instanceof FabricRequestError && error.status >= 400 &&
      error.status < 500;
    const status = error instanceof HTTPException
      ? error.status
      : refused
      ? (error.status as ContentfulStatusCode)
      : 502;
    return c.json({ error: error.message }, status);
  });
  return {
    app,
    close: () => {
      following.abort();
      sampler.stop();
      fanout.close();
    },
  };
}

/**
 * `/login` (the one-time token or the bearer token gives a session cookie)
 * and the guard in front of every other route.
 */
function useLogin(app: Hono, deps: UiServerDeps): void {
  const sessions = new Set<string>();
  let loginToken: string | null = deps.loginToken;
  app.get("/login", (c) => {
    const token = c.req.query("token") ?? "";
    const once = loginToken !== null && sameSecret(token, loginToken);
    if (!once && !sameSecret(token, deps.bearer)) return c.html(LOGIN_HTML, 401);
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
}

/**
 * Stops service `id` or restarts it through its parent, with the CLI's signed calls.
 * @throws {HTTPException} 404 for an unknown service, 409 for a root service's restart.
 */
async function serviceAction(
  deps: UiServerDeps,
  id: string,
  action: "restart" | "stop",
): Promise<unknown> {
  const records = await deps.registry.list();
  const record = records.find((r) => r.id === id);
  if (!record) throw new HTTPException(404, { message: `No service "${id}" in the registry` });
  if (action === "stop") {
    await deps.client.call(targetFor(record, records), {
      method: "POST",
      path: "/v1/stop",
      body: { reason: "stopped from fabricd ui" },
    });
    return { id, state: "STOPPED" };
  }
  const parent = records.find((r) => r.id === record.parent);
  if (!parent) {
    throw new HTTPException(409, {
      message: `Service "${id}" is a root service: restart it with "fabricd up"`,
    });
  }
  return await deps.client.call<SpawnResult>(targetFor(parent, records), {
    method: "POST",
    path: "/v1/spawn",
    body: { role: record.role, restart: id },
  }, { timeoutMs: 120_000 });
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
  return header.startsWith("Bearer ") && sameSecret(header.slice(7).trim(), bearer);
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

/**
 * Follows the registry's change stream until `signal` aborts, reconnecting
 * after a pause; `onBreak` is told each time the stream ends.
 */
async function followRegistry(
  registry: RegistryClient,
  signal: AbortSignal,
  onEvent: (event: RegistryEvent) => void,
  onBreak: () => void,
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
    onBreak();
    await new Promise((r) => setTimeout(r, 1000));
  }
}
