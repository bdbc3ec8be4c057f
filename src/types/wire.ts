/**
 * Request and answer bodies of the management API, validated with zod at the
 * HTTP edge (STYLE.md rule 8). Types are inferred from the schemas so the wire
 * format and the code cannot drift apart.
 * @module
 */
import * as z from "zod";
import { ROLES, type ServiceState } from "./mod.ts";

const serviceId = z.string().regex(
  /^[a-z][a-z0-9-]{1,62}$/,
  "must be 2-63 characters of a-z, 0-9 and '-', starting with a letter",
);
const base64url = z.string().regex(/^[A-Za-z0-9_-]+$/, "must be base64url");
const sessionId = z.string().regex(
  /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/,
  "must be 1-128 characters of letters, digits, '.', '_' and '-'",
);

/** A service ID as the API accepts it. */
export const serviceIdSchema = serviceId;
/** A session ID as the API accepts it. */
export const sessionIdSchema = sessionId;

/** Most sessions one service serves (its record's `sessions`). */
export const MAX_SESSIONS = 1000;

/**
 * WebSocket close code for a peer that does not read what is sent to it: a
 * queue client over 8 MiB behind, a relayed socket over 1 MiB behind.
 */
export const SLOW_READER_CLOSE_CODE = 4008;

/**
 * The query parameter a WebSocket client sets (`?proof=1`, signed with the
 * handshake) to have the service prove who accepted it: the service's first
 * frame is then a {@linkcode SocketProofFrame} (docs/protocol.md 3.3).
 */
export const SOCKET_PROOF_QUERY = "proof";

/**
 * The first frame of a socket opened with `?proof=1`: the headers of an
 * answer signed as a 101 with an empty body, for the handshake's nonce, by
 * the service that accepted it. The 101 itself cannot carry them: a
 * WebSocket client does not show its headers.
 */
export interface SocketProofFrame {
  op: "proof";
  /** `signature-input`, `signature`, `content-digest`, and `fabric-identity` when key-signed. */
  headers: Record<string, string>;
}

/** Option names that would reach an object's prototype when used as keys. */
const FORBIDDEN_NAMES = new Set(["__proto__", "constructor", "prototype"]);

/**
 * Role settings: up to 32 short `key: value` strings. `__proto__`,
 * `constructor` and `prototype` are refused, also when JSON.parse made them
 * own properties that a record would silently drop.
 */
export const roleOptionsSchema = z.unknown().superRefine((value, ctx) => {
  if (typeof value !== "object" || value === null) return;
  for (const key of Object.keys(value)) {
    if (FORBIDDEN_NAMES.has(key)) {
      ctx.addIssue({ code: "custom", message: `option name "${key}" is not allowed` });
    }
  }
}).pipe(
  z.record(
    z.string().regex(/^[a-zA-Z][a-zA-Z0-9_-]{0,31}$/, "option names are letters, digits, '_', '-'"),
    z.string().max(1024),
  ).refine((o) => Object.keys(o).length <= 32, "at most 32 options"),
);

/**
 * A service endpoint: `http(s)://HOST:PORT` and nothing else (no user info,
 * path, query, spaces or line breaks), so it can name only a host and port.
 */
export const endpointSchema = z.string().max(2048).regex(
  /^https?:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/,
  "must be http(s)://HOST:PORT, without user info, path or spaces",
);

/** `POST /v1/bootstrap`: the new service proves it holds the one-time password. */
export const bootstrapRequestSchema = z.strictObject({
  id: serviceId,
  /** Names the pending password: `passwordHandle(password)`, never the public ID. */
  handle: base64url.length(22, "must be the password's handle (22 base64url characters)"),
  publicKey: base64url.length(43, "must be a base64url X25519 public key (43 characters)"),
  endpoint: endpointSchema,
  /** The child's own Ed25519 public key, raw: its certificate will name it. */
  signingKey: base64url.length(43, "must be a base64url Ed25519 public key (43 characters)"),
  proof: base64url.length(43, "must be a base64url HMAC-SHA256 (43 characters)"),
  host: z.string().min(1).max(253),
  pid: z.int().positive(),
});
/** Body of `POST /v1/bootstrap`. */
export type BootstrapRequest = z.infer<typeof bootstrapRequestSchema>;

/** The sealed key bundle that answers a bootstrap. */
export const sealedBundleSchema = z.strictObject({
  publicKey: base64url,
  iv: base64url,
  ciphertext: base64url,
});

/** `POST /v1/configure`: what the spawner tells a bootstrapped service to be. */
export const configureRequestSchema = z.strictObject({
  role: z.enum(ROLES),
  incarnation: z.int().min(1),
  parent: serviceId,
  // The record's own limits (service_record.ts), so a configure the record
  // could not hold is refused here, naming the field, not when it is written.
  route: z.array(serviceId).min(1).max(64),
  launcher: z.string().min(1).max(2048),
  /** The service's endpoint as its parent reaches it (through port forwards over SSH). */
  endpoint: endpointSchema,
  heartbeatMs: z.int().min(50).max(600_000),
  sessions: z.array(sessionId).max(MAX_SESSIONS).default([]),
  options: roleOptionsSchema.default({}),
});
/** Body of `POST /v1/configure`. */
export type ConfigureRequest = z.infer<typeof configureRequestSchema>;

/** The instance ID a service process makes at its start. */
export const instanceSchema = z.string().regex(
  /^[A-Za-z0-9_-]{1,64}$/,
  "must be 1-64 letters, digits, '_' or '-'",
);

/**
 * `POST /v1/ready`: a child configured by its bootstrap answer tells its
 * parent that its role runs (docs/protocol.md 4.8); the parent then records
 * it ALIVE.
 */
export const readyRequestSchema = z.strictObject({
  id: serviceId,
  incarnation: z.int().min(1),
  /** The random ID the child's process made at its start; its heartbeats carry it. */
  instance: instanceSchema,
  /** When the child's process started, ms since the epoch. */
  started: z.int().min(0),
});
/** Body of `POST /v1/ready`. */
export type ReadyRequest = z.infer<typeof readyRequestSchema>;

/** `POST /v1/spawn`: grow the fabric by one service. */
export const spawnRequestSchema = z.strictObject({
  role: z.enum(ROLES),
  on: z.string().min(1).max(2048).default("local://"),
  sessions: z.array(sessionId).max(MAX_SESSIONS).default([]),
  /** Role settings for the new service, e.g. `{ queue: "que-1a2b3c4d" }` for an agent. */
  options: roleOptionsSchema.default({}),
  /** Restart this dead child under its old ID (role, launcher and sessions come from its record). */
  restart: serviceId.optional(),
});
/** Body of `POST /v1/spawn`. */
export type SpawnRequest = z.infer<typeof spawnRequestSchema>;

/** `POST /v1/connect`: an application attaches to a service for a session. */
export const connectRequestSchema = z.strictObject({
  session: sessionId,
  client: z.string().min(1).max(256),
});
/** Body of `POST /v1/connect`. */
export type ConnectRequest = z.infer<typeof connectRequestSchema>;

/**
 * `POST /v1/stop`: stop cleanly, with an optional reason and, for an agent,
 * the time its tasks get between SIGTERM and SIGKILL (default: its own).
 */
export const stopRequestSchema = z.strictObject({
  reason: z.string().max(500).default("stopped by request"),
  graceMs: z.number().int().min(0).max(600_000).optional(),
});
/** Body of `POST /v1/stop`. */
export type StopRequest = z.infer<typeof stopRequestSchema>;

const beatFields = {
  id: serviceId,
  incarnation: z.int().min(1),
  /** The sending process's instance ID. */
  instance: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional(),
  /** Send time by the sender's clock, ms since the epoch. */
  sentAt: z.int().min(0).optional(),
};

/**
 * `POST /v1/heartbeats` on an aggregating parent (a bridge, a pilot manager):
 * one child's heartbeat, passed up in the parent's next batch. `intervalMs`
 * (the child's heartbeat interval) bounds how long the parent holds it.
 */
export const localBeatSchema = z.strictObject({
  ...beatFields,
  intervalMs: z.int().min(50).max(600_000).optional(),
});
/** Body of `POST /v1/heartbeats` (to an aggregating parent). */
export type LocalBeat = z.infer<typeof localBeatSchema>;

/** The most beats one `POST /v1/registry/heartbeats` may carry. */
export const MAX_BATCH_BEATS = 5000;

/** `POST /v1/registry/heartbeats`: an aggregator's batch of its subtree's heartbeats. */
export const heartbeatBatchSchema = z.strictObject({
  /** The aggregating service that collected them. */
  via: serviceId,
  beats: z.array(z.strictObject(beatFields)).min(1).max(MAX_BATCH_BEATS),
});
/** Body of `POST /v1/registry/heartbeats`. */
export type HeartbeatBatch = z.infer<typeof heartbeatBatchSchema>;

/**
 * The registry's verdict on one beat of a batch, in the batch's order: `ok`
 * (with the state and incarnation held, as a lone heartbeat answers), or the
 * refusal a lone heartbeat would get: `replaced` (409: the instance must
 * stop) or `unknown` (404).
 */
export type BeatVerdict =
  | { id: string; result: "ok"; state: ServiceState; incarnation: number }
  | { id: string; result: "replaced" | "unknown"; message: string };
