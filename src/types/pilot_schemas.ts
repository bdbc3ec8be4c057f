/**
 * Bodies of the pilot manager's API, validated at the HTTP edge and by
 * `fabricd pilot submit` before it sends anything.
 * @module
 */
import * as z from "zod";
import { serviceIdSchema, sessionIdSchema } from "./wire.ts";

/** Most pilots one request may ask for. */
export const MAX_PILOTS_PER_REQUEST = 256;

/** `POST /v1/pilots`: submit agents through a launcher. */
export const pilotRequestSchema = z.strictObject({
  /** Launcher URL; default the manager's `on` option. */
  on: z.string().min(1).max(2048).optional(),
  count: z.int().min(1).max(MAX_PILOTS_PER_REQUEST).default(1),
  cores: z.int().min(1).max(4096).default(1),
  walltime: z.string().regex(
    /^(\d{1,6}|\d{1,7}[smh]|\d{1,4}:[0-5]\d(:[0-5]\d)?)$/,
    "must be minutes (30), a unit (90s, 30m, 2h) or HH:MM:SS",
  ).refine((value) => value === "" || !/^[0:]*[smh]?$/.test(value), "must be more than zero")
    .default(""),
  queue: serviceIdSchema,
  pubsub: serviceIdSchema,
  queueName: z.string().regex(
    /^[A-Za-z0-9._-]{1,64}$/,
    "must be 1-64 letters, digits, '.', '_' or '-'",
  )
    .default(""),
  /** Default the manager's `policy` option. */
  policy: z.enum(["resubmit", "report"]).optional(),
  sessions: z.array(sessionIdSchema).max(1000).default([]),
});
/** Body of `POST /v1/pilots`. */
export type PilotRequestBody = z.infer<typeof pilotRequestSchema>;
