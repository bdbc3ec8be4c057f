/**
 * The registry's share of a root key rotation and of the audit trail
 * (docs/protocol.md 2.14 and 2.15): it takes the operator's rotation
 * statement, hands it to every service that asks, and serves its own audit
 * lines.
 * @module
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import * as z from "zod";
import { signerOf } from "../api/authorization.ts";
import { jsonBody } from "../api/validate.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import { verifyRotation } from "../crypto/rotation.ts";
import { trustOf } from "../crypto/trust.ts";
import { readLogTail } from "../config/log_file.ts";

/** What the rotation and audit routes need. */
export interface RotationRouteOptions {
  /** The registry's own keys (a root service's: the operator's key). */
  keys: FabricKeys;
  /** The registry's own log file, where its audit lines are. Default: no audit route. */
  auditLog?: string;
}

/** Bytes read from the end of the log for `GET /v1/registry/audit`. */
export const AUDIT_SCAN_BYTES = 4 * 1024 * 1024;
/** Most audit lines one answer carries. */
export const MAX_AUDIT_LINES = 1000;

// The statement's own limits are verifyRotation's, so its refusals name them (docs/protocol.md 2.14).
const postSchema = z.strictObject({ statement: z.string().min(1).max(64 * 1024) });

/** `GET`/`POST /registry/rotation` and `GET /registry/audit`, under `/v1`. */
export function rotationRoutes(options: RotationRouteOptions): Hono {
  const app = new Hono();
  const trust = trustOf(options.keys);
  app.get("/registry/rotation", (c) => {
    const rotation = trust.rotation;
    return c.json({
      statement: rotation?.token ?? null,
      root: trust.root.fingerprint,
      previous: rotation?.old.fingerprint ?? null,
      until: rotation ? rotation.until * 1000 : null,
    });
  });
  app.post("/registry/rotation", jsonBody(postSchema), async (c) => {
    if (signerOf(c).kind !== "operator") {
      throw new HTTPException(403, {
        message: 'Refused by rule "rotate": only the operator rotates the fabric\'s root',
      });
    }
    const rotation = await verifyRotation(c.req.valid("json").statement);
    if (typeof rotation === "string") {
      throw new HTTPException(400, { message: `Invalid field "statement": ${rotation}` });
    }
    const held = trust.rotation;
    if (held?.token === rotation.token) return c.json({ root: trust.root.fingerprint });
    if (held && Date.now() / 1000 <= held.until) {
      throw new HTTPException(409, {
        message: `A rotation is in its grace until ${
          new Date(held.until * 1000).toISOString()
        }: rotate again after it ends`,
      });
    }
    if (rotation.old.fingerprint !== trust.root.fingerprint) {
      throw new HTTPException(409, {
        message:
          `The statement rotates from ${rotation.old.fingerprint}, this fabric's root is ${trust.root.fingerprint}`,
      });
    }
    trust.adopt(rotation);
    return c.json({ root: trust.root.fingerprint });
  });
  if (options.auditLog) addAuditRoute(app, options.auditLog);
  return app;
}

/** `GET /registry/audit?since=MS&limit=N`: the registry's own audit lines, newest last. */
function addAuditRoute(app: Hono, path: string): void {
  app.get("/registry/audit", async (c) => {
    const since = c.req.query("since");
    const limit = c.req.query("limit");
    if (since !== undefined && !/^\d{1,15}$/.test(since)) {
      throw new HTTPException(400, {
        message: 'Invalid query "since": give a time in ms since the epoch',
      });
    }
    const most = Number(limit ?? "200");
    if (
      limit !== undefined && (!/^\d{1,4}$/.test(limit) || most < 1 || most > MAX_AUDIT_LINES)
    ) {
      throw new HTTPException(400, {
        message: `Invalid query "limit": give 1 to ${MAX_AUDIT_LINES}`,
      });
    }
    const tail = await readLogTail(path, {
      maxBytes: AUDIT_SCAN_BYTES,
      ...(since === undefined ? {} : { since: Number(since) }),
    }).catch(() => ({ lines: [], truncated: false }));
    const lines = tail.lines.map(auditLine).filter((l) => l !== null);
    return c.json({
      lines: lines.slice(-most),
      truncated: tail.truncated || lines.length > most,
    });
  });
}

/** One audit line of the log, or null for any other line. */
function auditLine(text: string): Record<string, unknown> | null {
  if (!text.includes('"fabricd.audit"')) return null;
  try {
    const line = JSON.parse(text) as Record<string, unknown>;
    if (line.logger !== "fabricd.audit") return null;
    return {
      at: Date.parse(String(line["@timestamp"])),
      level: line.level,
      message: line.message,
      ...(typeof line.properties === "object" ? { properties: line.properties } : {}),
    };
  } catch {
    return null;
  }
}
