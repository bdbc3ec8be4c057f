/**
 * Bodies of the pilot manager's API, validated at the HTTP edge and by
 * `fabricd pilot submit` before it sends anything.
 * @module
 */
import * as z from "zod";
import { serviceIdSchema, sessionIdSchema } from "./wire.ts";
import { isWalltime, WALLTIME_FORMS } from "./walltime.ts";

/** Most pilots one request may ask for. */
export const MAX_PILOTS_PER_REQUEST = 256;

/** `POST /v1/pilots`: submit agents through a launcher. */
export const pilotRequestSchema = z.strictObject({
  /** Launcher URL; default the manager's `on` option. */
  on: z.string().min(1).max(2048).optional(),
  count: z.int().min(1).max(MAX_PILOTS_PER_REQUEST).default(1),
  cores: z.int().min(1).max(4096).default(1),
  /** Walltime (types/walltime.ts), checked as the launcher reads it; "" for the partition's. */
  walltime: z.string().max(16).refine(isWalltime, `must be ${WALLTIME_FORMS}, above zero`)
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
