/**
 * The registry's HTTP routes, mounted under `/v1` of the registry service.
 * Every one is signed like all management requests.
 * @module
 */
import { signerOf } from "../api/authorization.ts";
import { refuseChange, refusePut, refuseReport } from "./authority.ts";
import { revocationPage, revokeService } from "./revocations.ts";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { streamSSE } from "hono/streaming";
import * as z from "zod";
import { heartbeatBatchSchema, serviceIdSchema, sessionIdSchema } from "../types/wire.ts";
import { jsonBody, validParam } from "../api/validate.ts";
import { queryList, singleQuery } from "../api/query.ts";
import { ROLES, SERVICE_STATES } from "../types/mod.ts";
import { serviceRecordSchema } from "../types/service_record.ts";
import type { Registry } from "./registry.ts";
import { UnknownServiceError } from "./store.ts";
import { filterRecords, type RecordFilter } from "./record_filter.ts";
import { type RotationRouteOptions, rotationRoutes } from "./rotation_routes.ts";
import { trustOf } from "../crypto/trust.ts";
import {
  clearInterval,
  clearTimeout,
  setInterval,
  setTimeout,
  type Timer,
} from "../base/timers.ts";

const putSchema = z.strictObject({
  record: serviceRecordSchema,
  reason: z.string().min(1).max(500),
});
const transitionSchema = z.strictObject({
  incarnation: z.int().min(1),
  to: z.enum(SERVICE_STATES),
  reason: z.string().min(1).max(2000),
  exited: z.boolean().optional(),
});
const heartbeatSchema = z.strictObject({
  incarnation: z.int().min(1),
  instance: serviceRecordSchema.shape.instance,
  sentAt: z.int().min(0).optional(),
});
const revokeSchema = z.strictObject({
  reason: z.string().min(1).max(500).default("revoked by the operator"),
});
const reportSchema = z.strictObject({
  incarnation: z.int().min(1),
  reason: z.string().min(1).max(2000),
});

/**
 * Registry routes over `registry`; `current` is null until the role has
 * started. With `options.keys`, the rotation routes too, and heartbeat
 * answers name the fabric's current root (docs/protocol.md 2.14).
 */
export function registryRoutes(
  current: () => Registry | null,
  options: Partial<RotationRouteOptions> = {},
): Hono {
  const app = new Hono();
  const registry = (): Registry => {
    const r = current();
    if (!r) throw new HTTPException(503, { message: "Registry is starting: retry in a moment" });
    return r;
  };
  const keys = options.keys;
  const root = keys ? () => ({ root: trustOf(keys).root.fingerprint }) : () => ({});
  addRecordRoutes(app, registry);
  addLivenessRoutes(app, registry, root);
  if (keys) app.route("/", rotationRoutes({ ...options, keys }));
  addSessionRoutes(app, registry);
  addRevocationRoutes(app, registry);
  addWatchRoute(app, registry);
  return app;
}

/** Reading and writing records: list, get (with its history), put, transition. */
function addRecordRoutes(app: Hono, registry: () => Registry): void {
  app.get("/registry/services", async (c) => {
    const filter = listFilter(
      singleQuery(c, "role"),
      singleQuery(c, "state"),
      singleQuery(c, "under"),
    );
    const services = await registry().list();
    return c.json({ services: filter ? filterRecords(services, filter) : services });
  });
  app.get("/registry/services/:id", async (c) => {
    const id = validParam(c, "id", serviceIdSchema);
    const record = await registry().get(id);
    if (!record) throw new UnknownServiceError(id);
    return c.json({ record, transitions: await registry().history(id) });
  });
  app.put("/registry/services/:id", jsonBody(putSchema), async (c) => {
    const id = validParam(c, "id", serviceIdSchema);
    const { record, reason } = c.req.valid("json");
    if (record.id !== id) {
      throw new HTTPException(400, {
        message: `Invalid field "record.id": "${record.id}" does not match the path "${id}"`,
      });
    }
    deny(refusePut(signerOf(c), await registry().get(id), record));
    return c.json({ record: await registry().put(record, reason) });
  });
  app.delete("/registry/services/:id", async (c) => {
    const id = validParam(c, "id", serviceIdSchema);
    deny(refuseChange(signerOf(c), await registry().get(id)));
    return c.json({ record: await registry().forget(id) });
  });
  app.post("/registry/services/:id/transitions", jsonBody(transitionSchema), async (c) => {
    const id = validParam(c, "id", serviceIdSchema);
    const change = c.req.valid("json");
    deny(refuseChange(signerOf(c), await registry().get(id), change.incarnation));
    return c.json({ record: await registry().transition(id, change) });
  });
}

/** Liveness news: a service's heartbeat, and a caller's report that it cannot reach one. */
function addLivenessRoutes(
  app: Hono,
  registry: () => Registry,
  root: () => { root?: string },
): void {
  app.post("/registry/services/:id/heartbeat", jsonBody(heartbeatSchema), async (c) => {
    const id = validParam(c, "id", serviceIdSchema);
    const { incarnation, instance, sentAt } = c.req.valid("json");
    deny(refuseChange(signerOf(c), await registry().get(id), incarnation));
    const record = await registry().heartbeat(id, incarnation, {
      ...(instance === undefined ? {} : { instance }),
      ...(sentAt === undefined ? {} : { sentAt }),
    });
    // `revocations`: the newest change seen; a service whose revocation list is
    // older fetches what it missed (docs/protocol.md 2.11). `root`: the current
    // root; a service that does not know it learns the rotation (2.14).
    return c.json({
      state: record.state,
      incarnation: record.incarnation,
      revocations: registry().lastSeq,
      ...root(),
    });
  });
  app.post("/registry/heartbeats", jsonBody(heartbeatBatchSchema), async (c) => {
    const beats = c.req.valid("json").beats.map(({ id, incarnation, instance, sentAt }) => ({
      id,
      incarnation,
      ...(instance === undefined ? {} : { instance }),
      ...(sentAt === undefined ? {} : { sentAt }),
    }));
    // Each beat is refused alone when its signer may not beat for it (an
    // aggregator beats for its own subtree only: docs/protocol.md 2.12).
    const signer = signerOf(c);
    const results = await registry().heartbeatMany(beats, (held) => refuseChange(signer, held));
    return c.json({ results, revocations: registry().lastSeq, ...root() });
  });
  app.post("/registry/services/:id/reports", jsonBody(reportSchema), async (c) => {
    const id = validParam(c, "id", serviceIdSchema);
    const { incarnation, reason } = c.req.valid("json");
    deny(refuseReport(signerOf(c), await registry().get(id)));
    const record = await registry().report(id, incarnation, reason);
    if (!record) throw new UnknownServiceError(id);
    return c.json({ record });
  });
}

/**
 * The filter of a listing from its query: `role` and `state` are
 * comma-separated lists, `under` one service ID; null when none is given.
 * @throws {HTTPException} 400 when a value is not a role, state or ID.
 */
function listFilter(
  role: string | undefined,
  state: string | undefined,
  under: string | undefined,
): RecordFilter | null {
  if (role === undefined && state === undefined && under === undefined) return null;
  const list = (text: string | undefined, known: readonly string[], name: string) => {
    const items = text === undefined ? undefined : queryList(name, text);
    const bad = items?.find((item) => !known.includes(item));
    if (bad !== undefined) {
      throw new HTTPException(400, {
        message: `Invalid query "${name}": "${bad}" is not one of ${known.join(", ")}`,
      });
    }
    return items;
  };
  if (under !== undefined && !serviceIdSchema.safeParse(under).success) {
    throw new HTTPException(400, { message: 'Invalid query "under": give a service ID' });
  }
  return {
    roles: list(role, ROLES, "role"),
    states: list(state, SERVICE_STATES, "state"),
    under,
  };
}

/** The revocation list, and `fabricd revoke`. */
function addRevocationRoutes(app: Hono, registry: () => Registry): void {
  app.get("/registry/revocations", async (c) => {
    const raw = singleQuery(c, "since");
    if (raw !== undefined && !/^\d{1,15}$/.test(raw)) {
      throw new HTTPException(400, {
        message: 'Invalid query "since": give a change sequence number, 0 or more',
      });
    }
    return c.json(await revocationPage(registry(), raw === undefined ? undefined : Number(raw)));
  });
  app.post("/registry/services/:id/revoke", jsonBody(revokeSchema), async (c) => {
    const id = validParam(c, "id", serviceIdSchema);
    const signer = signerOf(c);
    if (signer.kind !== "operator") {
      deny(
        refuseChange(signer, await registry().get(id)) ??
          (signer.id === id ? `Refused by rule "revoke": a service cannot revoke itself` : null),
      );
    }
    return c.json({ record: await revokeService(registry(), id, c.req.valid("json").reason) });
  });
}

/** The sessions a service serves. */
function addSessionRoutes(app: Hono, registry: () => Registry): void {
  app.put("/registry/services/:id/sessions/:session", async (c) => {
    const id = validParam(c, "id", serviceIdSchema);
    const session = validParam(c, "session", sessionIdSchema);
    deny(refuseChange(signerOf(c), await registry().get(id)));
    return c.json({ record: await registry().setSession(id, session, true) });
  });
  app.delete("/registry/services/:id/sessions/:session", async (c) => {
    const id = validParam(c, "id", serviceIdSchema);
    const session = validParam(c, "session", sessionIdSchema);
    deny(refuseChange(signerOf(c), await registry().get(id)));
    return c.json({ record: await registry().setSession(id, session, false) });
  });
}

/**
 * Live changes that may wait for one watcher, as JSON bytes, before its
 * stream is cut off (docs/protocol.md 5.3 "Watch"): with the connection limit
 * (2.10) this bounds what watchers that do not read can make the registry
 * hold.
 */
export const WATCH_QUEUE_BYTES = 256 * 1024;

/**
 * How long a watcher that was cut off has to take the write in its socket's
 * way and the comment that says it was cut, ms, before its stream is ended.
 */
export const WATCH_CUT_GRACE_MS = 1000;

/** The change stream from a sequence number on, as server-sent events. */
function addWatchRoute(app: Hono, registry: () => Registry): void {
  app.get("/registry/watch", (c) => {
    const raw = singleQuery(c, "since") ?? "0";
    const since = Number(raw);
    if (!/^\d{1,15}$/.test(raw)) {
      throw new HTTPException(400, {
        message: 'Invalid query "since": give a change sequence number, 0 or more',
      });
    }
    const r = registry();
    return streamSSE(c, async (stream) => {
      // A watcher that stops reading holds one write in its socket's way; the
      // live changes behind it wait in the feed, and past the feed's bound the
      // stream is cut: the watcher resumes. A socket that still takes writes
      // gets the comment that says so; one that does not is given up after
      // WATCH_CUT_GRACE_MS (its pending write with it).
      let giveUp: Timer | undefined;
      const feed = r.feed(since, WATCH_QUEUE_BYTES, () => {
        giveUp = setTimeout(() => stream.abort(), WATCH_CUT_GRACE_MS);
      });
      stream.onAbort(() => feed.close());
      const keepAlive = setInterval(() => void stream.write(": keep-alive\n\n"), 15_000);
      try {
        for (let next = await feed.next(); next && !stream.aborted; next = await feed.next()) {
          await stream.writeSSE({
            id: String(next.event.seq),
            event: next.event.kind,
            data: next.json,
          });
        }
        if (feed.cut && !stream.aborted) {
          await stream.write(
            `: cut off: the watcher fell behind; resume with since=${feed.last}\n\n`,
          );
        }
      } finally {
        clearTimeout(giveUp);
        clearInterval(keepAlive);
        feed.close();
      }
    });
  });
}

/** Throws the 403 of a refusal. */
function deny(why: string | null): void {
  if (why !== null) throw new HTTPException(403, { message: why });
}
