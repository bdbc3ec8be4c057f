/**
 * The options each role takes (`fabricd spawn --role R --option K=V`), one
 * zod schema per role: every option with its type, default and a one-line
 * help (zod metadata). A spawn is checked against it before anything starts
 * (`fabricd spawn` exits 64, `POST /v1/spawn` answers 400), and
 * `fabricd spawn --role R --help` prints it (issue 12, item 4).
 * @module
 */
import * as z from "zod";
import { launcherUrlProblem } from "./launcher_urls.ts";
import type { Role } from "./mod.ts";
import { QUEUE_LIMITS, QUEUE_NAME as QUEUE_NAME_PATTERN } from "./queue_wire.ts";
import { isWalltime, WALLTIME_FORMS } from "./walltime.ts";

/** What the help shows of one option. */
export interface RoleOptionInfo {
  name: string;
  /** The kind of value, e.g. "integer 1-4096", "service ID". */
  type: string;
  /** The default, or "required". */
  default: string;
  help: string;
}

interface OptionMeta {
  type: string;
  default: string;
  help: string;
}

/** A role's options: values are strings on the wire, checked by their pattern. */
type OptionsSchema = z.ZodObject<Record<string, z.ZodType<string | undefined>>>;

/**
 * A whole number from `min` to `max` written in at most `digits` digits: the
 * same test the role makes when it starts (agent and queue read 9 digits,
 * pub/sub 12, pilot-manager 3), so a value passing here does not fail there.
 */
function whole(min: number, max: number, digits = 9): z.ZodType<string> {
  const pattern = new RegExp(`^\\d{1,${digits}}$`);
  return z.string().refine((v) => pattern.test(v) && Number(v) >= min && Number(v) <= max, {
    message: `must be a whole number from ${min} to ${max}`,
  });
}

/**
 * Most messages one pub/sub subscriber's outbox may hold: its ring is
 * allocated whole when the subscriber comes (8 bytes a slot, 8 MB and some
 * 30 ms at this size), and an array cannot be longer than 2^32 - 1.
 */
const MAX_PUBSUB_BUFFER = 1_000_000;

/**
 * Fewest bytes a pub/sub outbox may hold: one message of the largest size
 * (64 KiB) and its frame (1 KiB), as the broker requires when it starts.
 */
const MIN_PUBSUB_BUFFER_BYTES = 65 * 1024;

/** Largest number the pub/sub role reads from an option (12 digits). */
const MAX_PUBSUB_NUMBER = 999_999_999_999;

/**
 * Heartbeat interval of a registry's services, ms: its option `heartbeatMs`,
 * `--heartbeat-ms` of `fabricd up` and of `fabricd --role`.
 */
export const HEARTBEAT_MS = { min: 50, max: 600_000 } as const;

/** Silence after which a registry declares a service DEAD, ms: `ttlMs`, `--ttl-ms`. */
export const TTL_MS = { min: 100, max: 3_600_000 } as const;

/** A registry's store: `sqlite:PATH` or `etcd://host:port[,host:port...]`. */
export const STORE_URL = /^(sqlite:.+|etcd:\/\/.+)$/;

/** Largest number the agent and queue roles read from an option (9 digits). */
const MAX_NINE_DIGITS = 999_999_999;

function option(
  schema: z.ZodType<string>,
  meta: OptionMeta,
): z.ZodType<string | undefined> {
  const described = meta.default === "required" ? schema : schema.optional();
  return described.meta({ ...meta });
}

const SERVICE_ID = z.string().regex(
  /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/,
  "must be a service ID (e.g. que-1a2b3c4d)",
);
const QUEUE_NAME = z.string().regex(
  QUEUE_NAME_PATTERN,
  "must be 1-64 letters, digits, '.', '_' or '-'",
);
// The parser the slurm:// launcher and pilot requests use: one walltime, one meaning.
const WALLTIME = z.string().max(16).refine(
  isWalltime,
  `must be a walltime above zero: ${WALLTIME_FORMS}`,
);

/**
 * A launcher URL this build has, checked as `spawn --on` and `pilot submit
 * --on` are (types/launcher_urls.ts): an unknown scheme is refused here, not
 * at every later submission.
 */
const LAUNCHER_URL = z.string().max(2048, "must be at most 2048 characters").check((ctx) => {
  const problem = launcherUrlProblem(ctx.value);
  if (problem) {
    ctx.issues.push({
      code: "custom",
      message: `is refused: ${problem.message}`,
      input: ctx.value,
    });
  }
});

/** The options of every role; a role not named takes none. */
export const ROLE_OPTION_SCHEMAS: Readonly<Record<Role, OptionsSchema>> = {
  registry: z.strictObject({
    store: option(
      z.string().regex(STORE_URL, "must be sqlite:PATH or etcd://host:port,..."),
      {
        type: "store URL",
        default: "sqlite:DIR/registry-ID.db",
        help: "where the records live: sqlite:PATH or etcd://host:port,host:port",
      },
    ),
    heartbeatMs: option(whole(HEARTBEAT_MS.min, HEARTBEAT_MS.max, 12), {
      type: "integer ms",
      default: "2000",
      help: "heartbeat interval the registry expects",
    }),
    ttlMs: option(whole(TTL_MS.min, TTL_MS.max, 12), {
      type: "integer ms",
      default: "3 heartbeats",
      help: "silence after which a service is DEAD",
    }),
  }),
  spawner: z.strictObject({}),
  bridge: z.strictObject({}),
  queue: z.strictObject({
    capacity: option(whole(1, MAX_NINE_DIGITS), {
      type: "integer 1-999999999",
      default: "10000",
      help: "unacknowledged messages per queue",
    }),
    maxWaiters: option(whole(1, MAX_NINE_DIGITS), {
      type: "integer 1-999999999",
      default: "1000",
      help: "gets that may wait at once",
    }),
    historyDays: option(whole(0, 3650), {
      type: "integer days",
      default: "7",
      help: "days a finished task stays in the task history",
    }),
    historyMax: option(whole(0, 1e8), {
      type: "integer",
      default: "10000",
      help: "finished tasks the task history keeps at most",
    }),
  }),
  pubsub: z.strictObject({
    buffer: option(whole(1, MAX_PUBSUB_BUFFER, 12), {
      type: "integer 1-1000000",
      default: "1024",
      help: "messages held per subscriber",
    }),
    bufferBytes: option(whole(MIN_PUBSUB_BUFFER_BYTES, MAX_PUBSUB_NUMBER, 12), {
      type: "integer bytes",
      default: "16777216",
      help: "bytes held per subscriber (at least 66560: 65 KiB)",
    }),
    highWaterBytes: option(whole(1, MAX_PUBSUB_NUMBER, 12), {
      type: "integer bytes",
      default: "1048576",
      help: "socket bytes in flight before a subscriber counts as slow",
    }),
  }),
  agent: z.strictObject({
    queue: option(SERVICE_ID, {
      type: "service ID",
      default: "required",
      help: "the queue service to take tasks from",
    }),
    pubsub: option(SERVICE_ID, {
      type: "service ID",
      default: "required",
      help: "the pub/sub service to publish task events on",
    }),
    cores: option(whole(1, 4096), {
      type: "integer 1-4096",
      default: "the host's cores",
      help: "core slots for tasks",
    }),
    queueName: option(QUEUE_NAME, {
      type: "name",
      default: "tasks",
      help: "the queue to take tasks from",
    }),
    visibilityMs: option(whole(1000, QUEUE_LIMITS.maxVisibilityMs), {
      type: `integer ms, 1000-${QUEUE_LIMITS.maxVisibilityMs}`,
      default: "60000",
      help: "visibility timeout of a taken task",
    }),
    prefetch: option(whole(0, QUEUE_LIMITS.maxBatch), {
      type: "integer 0-100",
      default: "cores",
      help: "tasks taken beyond the free cores",
    }),
    graceMs: option(whole(0, 600_000), {
      type: "integer ms, 0-600000",
      default: "10000",
      help: "SIGTERM to SIGKILL on cancel, timeout and stop",
    }),
    via: option(z.enum(["direct", "parent"], { message: "must be direct or parent" }), {
      type: "direct|parent",
      default: "direct",
      help: "parent: reach the queue and pub/sub through the parent (pilots)",
    }),
    outputBytes: option(whole(1, MAX_NINE_DIGITS), {
      type: "integer bytes, 1-999999999",
      default: "10485760",
      help: "stdout and stderr one task keeps in its directory",
    }),
    keepTasks: option(whole(1, 100_000), {
      type: "integer 1-100000",
      default: "100",
      help: "task directories the agent keeps",
    }),
    walltime: option(WALLTIME, {
      type: "walltime",
      default: "none",
      help: "the pilot's walltime, set by a pilot manager",
    }),
  }),
  "pilot-manager": z.strictObject({
    on: option(LAUNCHER_URL, {
      type: "launcher URL",
      default: "slurm://",
      help: "where pilots run: slurm://[partition], local://, ssh://host",
    }),
    policy: option(z.enum(["resubmit", "report"], { message: "must be resubmit or report" }), {
      type: "resubmit|report",
      default: "resubmit",
      help: "what happens when a pilot's job ends early",
    }),
    maxResubmits: option(whole(0, 100, 3), {
      type: "integer 0-100",
      default: "2",
      help: "resubmissions of one pilot before it is reported",
    }),
  }),
};

/** A spawn's role options that the role does not take. */
export class RoleOptionsError extends TypeError {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RoleOptionsError";
  }
}

/** The options of `role`, for help texts and error messages. */
export function roleOptionInfo(role: Role): RoleOptionInfo[] {
  const shape = ROLE_OPTION_SCHEMAS[role].shape;
  return Object.entries(shape).map(([name, schema]) => {
    const meta = (schema.meta() ?? {}) as Partial<OptionMeta>;
    return {
      name,
      type: meta.type ?? "string",
      default: meta.default ?? "",
      help: meta.help ?? "",
    };
  });
}

/** The options of `role` as an aligned table, one per line; "(none)" when it takes none. */
export function formatRoleOptions(role: Role): string {
  const info = roleOptionInfo(role);
  if (info.length === 0) return `  (role ${role} takes no options)`;
  const width = Math.max(...info.map((o) => `${o.name}=${o.type}`.length));
  return info.map((o) =>
    `  ${`${o.name}=${o.type}`.padEnd(width)}  ${o.help} (default: ${o.default})`
  ).join("\n");
}

/**
 * Checks `options` against `role`'s schema.
 * @throws {RoleOptionsError} naming every unknown, missing or bad option and
 * listing the valid ones.
 */
export function checkRoleOptions(role: Role, options: Record<string, string>): void {
  const parsed = ROLE_OPTION_SCHEMAS[role].safeParse(options);
  if (parsed.success) return;
  const problems = parsed.error.issues.map((issue) => {
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((k) => `unknown option "${k}"`).join(", ");
    }
    const name = String(issue.path[0] ?? "");
    if (options[name] === undefined) return `option "${name}" is required`;
    return `option ${name}="${options[name]}" ${issue.message}`;
  });
  throw new RoleOptionsError(
    `Invalid options for role ${role}: ${problems.join("; ")}. Valid options:\n` +
      formatRoleOptions(role),
  );
}
