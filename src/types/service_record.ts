/**
 * The service record (DESIGN.md "Registry"), declared once as a zod schema:
 * the registry validates `PUT /v1/registry/services/{id}` with it and every
 * module uses the type inferred from it, so the wire format and the code
 * cannot drift apart.
 * @module
 */
import * as z from "zod";
import { ROLES, SERVICE_STATES } from "./mod.ts";
import {
  endpointSchema,
  instanceSchema,
  MAX_SESSIONS,
  roleOptionsSchema,
  serviceIdSchema,
  sessionIdSchema,
} from "./wire.ts";

export { MAX_SESSIONS };

/** A record's endpoint: "" until known, else only `http(s)://HOST:PORT`. */
const recordEndpointSchema = z.string().refine(
  (endpoint) => endpoint === "" || endpointSchema.safeParse(endpoint).success,
  'must be "" or http(s)://HOST:PORT, without user info, path, spaces or line breaks',
);

/** One registry record per service, as stored and as sent over the wire. */
export const serviceRecordSchema = z.strictObject({
  id: serviceIdSchema,
  role: z.enum(ROLES),
  state: z.enum(SERVICE_STATES),
  incarnation: z.int().min(1),
  host: z.string().max(253),
  pid: z.int().min(0),
  endpoint: recordEndpointSchema,
  /** Service ID of the parent, or "" for a root service. */
  parent: z.string().max(63),
  /** Service IDs from the root down to this service, this one included. */
  route: z.array(serviceIdSchema).max(64),
  launcher: z.string().max(2048),
  imageHash: z.string().max(128),
  sessions: z.array(sessionIdSchema).max(MAX_SESSIONS),
  /** Milliseconds since the epoch. */
  started: z.int().min(0),
  /** Milliseconds since the epoch; 0 before the first heartbeat. */
  lastHeartbeat: z.int().min(0),
  restarts: z.int().min(0),
  lastFailure: z.string().max(2000),
  /** Milliseconds since the epoch of the last state change. */
  updated: z.int().min(0),
  /** Role settings given at spawn (e.g. an agent's queue); kept for restarts. */
  options: roleOptionsSchema.default({}),
  /**
   * The process that registered this incarnation: a random ID it made at
   * start, sent with each heartbeat. Absent before the service is ALIVE.
   */
  instance: instanceSchema.optional(),
  /**
   * Set when this incarnation's death was reported by its parent (the process
   * ended): final for the incarnation, no heartbeat takes it back. Cleared by
   * the next incarnation.
   */
  exited: z.boolean().optional(),
});

/** One registry record per service (DESIGN.md "Registry"); a parsed {@linkcode serviceRecordSchema}. */
export type ServiceRecord = z.infer<typeof serviceRecordSchema>;
