/**
 * Command-line flags for every command: unknown flags and missing values become
 * usage errors (exit 64) that name the flag and the help command. Hand-written
 * rather than `node:util` `parseArgs`, so that a command whose own code needs no
 * Node module starts without Deno's Node compatibility layer (docs/performance.md,
 * cli-latency).
 * @module
 */
import { queueNameSchema } from "../types/queue_schemas.ts";
import { serviceIdSchema, sessionIdSchema } from "../types/wire.ts";
import { STORE_URL } from "../types/role_options.ts";
import { echoed, usage } from "./cli_error.ts";

/** One flag: a string value or a boolean switch. */
export type FlagSpec = { type: "string"; multiple?: boolean; short?: string } | {
  type: "boolean";
  short?: string;
};

/** Parsed flags and positional arguments. */
export interface ParsedArgs {
  flags: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/**
 * Parses `args` for `command`: `--name VALUE`, `--name=VALUE`, `-x VALUE`,
 * switches (`--name`, `-x`, grouped `-xy`), `--help`/`-h` always, and `--`
 * before positional arguments that start with a dash. A repeated flag keeps
 * its last value unless it is `multiple`. A negative number (`--count -1`) is
 * a value, so that the flag's own check names its range.
 * @throws {CliError} (64) on an unknown flag, a flag without its value or a
 * switch given a value.
 */
export function parseFlags(
  command: string,
  args: string[],
  spec: Record<string, FlagSpec>,
): ParsedArgs {
  const options: Record<string, FlagSpec> = { ...spec, help: { type: "boolean", short: "h" } };
  const shorts = new Map(
    Object.entries(options).flatMap(([name, o]) => o.short ? [[o.short, name] as const] : []),
  );
  const flags: ParsedArgs["flags"] = {};
  const positionals: string[] = [];
  const fail = (problem: string): never => {
    throw usage(`${problem}: see "fabricd ${command} --help"`);
  };
  const set = (name: string, given: string, inline: string | undefined, next: () => string) => {
    const option = Object.hasOwn(options, name) ? options[name] : undefined;
    if (!option) return fail(`Unknown flag "${echoed(given)}"`);
    if (option.type === "boolean") {
      if (inline !== undefined) fail(`Flag "${echoed(given)}" takes no value`);
      flags[name] = true;
      return;
    }
    const value = inline ?? next();
    if (!option.multiple) flags[name] = value;
    else flags[name] = [...(flags[name] as string[] | undefined ?? []), value];
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = (): string => {
      const value = args[i + 1];
      if (value === undefined || /^-(?!\d)./.test(value)) {
        return fail(`Flag "${echoed(arg)}" needs a value`);
      }
      i++;
      return value;
    };
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const given = eq < 0 ? arg : arg.slice(0, eq);
      set(given.slice(2), given, eq < 0 ? undefined : arg.slice(eq + 1), next);
    } else if (arg.startsWith("-") && arg !== "-") {
      const letters = [...arg.slice(1)];
      if (
        letters.length > 1 && letters.some((l) => options[shorts.get(l) ?? ""]?.type !== "boolean")
      ) {
        fail(`Unknown flag "${echoed(arg)}"`);
      }
      for (const letter of letters) set(shorts.get(letter) ?? "", `-${letter}`, undefined, next);
    } else {
      positionals.push(arg);
    }
  }
  return { flags, positionals };
}

/** A string flag's value, or undefined. */
export function stringFlag(parsed: ParsedArgs, name: string): string | undefined {
  const value = parsed.flags[name];
  return typeof value === "string" ? value : undefined;
}

/** A repeated string flag's values. */
export function listFlag(parsed: ParsedArgs, name: string): string[] {
  const value = parsed.flags[name];
  return Array.isArray(value) ? value : typeof value === "string" ? [value] : [];
}

/**
 * A whole-number flag within `range`, or undefined when not given.
 * @throws {CliError} (64) naming the flag, its value and the range.
 */
export function rangeFlag(
  parsed: ParsedArgs,
  name: string,
  range: { min: number; max: number },
  hint = "",
): number | undefined {
  const value = stringFlag(parsed, name);
  if (value === undefined) return undefined;
  const n = /^\d{1,9}$/.test(value) ? Number(value) : NaN;
  if (n >= range.min && n <= range.max) return n;
  throw usage(
    `Invalid --${name} "${echoed(value)}": give a whole number from ${range.min} to ${range.max}${
      hint ? `, or ${hint}` : ""
    }`,
  );
}

/**
 * `--store`: a registry store URL, or undefined.
 * @throws {CliError} (64) for anything but `sqlite:PATH` or `etcd://host:port,...`.
 */
export function storeFlag(parsed: ParsedArgs): string | undefined {
  const store = stringFlag(parsed, "store");
  if (store !== undefined && !STORE_URL.test(store)) {
    throw usage(
      `Invalid --store "${echoed(store)}": use sqlite:PATH or etcd://host:port[,host:port...]`,
    );
  }
  return store;
}

/**
 * A repeated `--name KEY=VALUE` flag as an object.
 * @throws {CliError} (64) when a value has no `=` or an empty key, or when a
 * key is given twice (which value was meant is the user's to say).
 */
export function keyValueFlag(parsed: ParsedArgs, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of listFlag(parsed, name)) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw usage(`Invalid --${name} "${echoed(pair)}": use KEY=VALUE`);
    const key = pair.slice(0, eq);
    if (Object.hasOwn(out, key)) {
      throw usage(
        `Repeated --${name} "${echoed(key)}" ("${echoed(`${key}=${out[key]}`)}", then "${
          echoed(pair)
        }"): give each key once`,
      );
    }
    out[key] = pair.slice(eq + 1);
  }
  return out;
}

/** The bounds of a duration flag, ms: see {@linkcode parseDuration}. */
export interface DurationRange {
  /** Shortest accepted, ms. Default: 0. */
  min?: number;
  /** Longest accepted, ms. Default: no bound. */
  max?: number;
}

/** Durations that usage errors show as examples, with their length in ms. */
const DURATION_EXAMPLES: readonly (readonly [string, number])[] = [
  ["500ms", 500],
  ["90s", 90_000],
  ["10m", 600_000],
  ["2h", 7_200_000],
  ["1d", 86_400_000],
];

/** Units of a duration, longest first, in ms. */
const DURATION_UNITS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 } as const;

/** `ms` in the longest unit that writes it whole: 600000 as `10m`, 1500 as `1500ms`. */
export function formatDuration(ms: number): string {
  const unit = Object.entries(DURATION_UNITS).find(([, size]) => ms > 0 && ms % size === 0);
  return unit ? `${ms / unit[1]}${unit[0]}` : `${ms}ms`;
}

/**
 * A duration (`500ms`, `90s`, `10m`, `2h`, `1d`; a bare number is seconds) in
 * ms: the one parser of every duration flag (`--since`, `--grace`, `--timeout`).
 * A duration outside `range` is refused as a malformed one is, with the same
 * message: the range, and examples within it.
 * @throws {CliError} (64) naming `--flag` when `text` is not such a duration.
 */
export function parseDuration(text: string, flag = "since", range: DurationRange = {}): number {
  const min = range.min ?? 0;
  const max = range.max ?? Infinity;
  const match = /^(\d{1,9}(?:\.\d{1,3})?)(ms|s|m|h|d)?$/.exec(text.trim());
  const ms = match
    ? Math.round(
      Number(match[1]) * DURATION_UNITS[(match[2] ?? "s") as keyof typeof DURATION_UNITS],
    )
    : NaN;
  if (ms >= min && ms <= max) return ms;
  const bounds = min > 0 && max < Infinity
    ? ` from ${formatDuration(min)} to ${formatDuration(max)}`
    : min > 0
    ? ` of at least ${formatDuration(min)}`
    : max < Infinity
    ? ` of at most ${formatDuration(max)}`
    : "";
  const fitting = DURATION_EXAMPLES.filter(([, size]) => size >= min && size <= max).map(([e]) =>
    e
  );
  const examples = fitting.length > 1
    ? `${fitting.slice(0, -1).join(", ")} or ${fitting.at(-1)}`
    : fitting[0] ?? formatDuration(max);
  throw usage(
    `Invalid --${flag} "${echoed(text)}": give a duration${bounds}${
      bounds ? "," : ""
    } such as ${examples}`,
  );
}

/**
 * A duration flag (see {@linkcode parseDuration}) in ms within `range`, or `fallback`.
 * @throws {CliError} (64) when the value is not such a duration, or is outside `range`.
 */
export function durationFlag(
  parsed: ParsedArgs,
  name: string,
  fallback: number,
  range: DurationRange = {},
): number {
  const value = stringFlag(parsed, name);
  return value === undefined ? fallback : parseDuration(value, name, range);
}

/** What {@linkcode checkId} checks: the API's own patterns, so no request is sent with one it refuses. */
const ID_KINDS = {
  service: { what: "service ID", schema: serviceIdSchema, example: "spw-1a2b3c4d" },
  session: { what: "session ID", schema: sessionIdSchema, example: "my-run" },
  queue: { what: "queue name", schema: queueNameSchema, example: "tasks" },
} as const;

/** A kind of name a command line gives: a service ID, a session ID or a queue name. */
export type IdKind = keyof typeof ID_KINDS;

/** Where an ID checked by {@linkcode checkId} came from, for its error message. */
export interface CheckIdOptions {
  /** The flag that gave it (e.g. `--queue`). Default: a positional argument. */
  flag?: string;
  /** A valid one to show. Default: one of the flag's role (`--queue`: `que-1a2b3c4d`), or of `kind`. */
  example?: string;
}

/** Examples of the service IDs that flags name, by flag. */
const FLAG_EXAMPLES: Record<string, string> = {
  "--queue": "que-1a2b3c4d",
  "--pubsub": "pub-1a2b3c4d",
  "--manager": "plm-1a2b3c4d",
};

/**
 * `value` when it is a valid `kind` (service IDs as `serviceIdSchema`, session
 * IDs as `sessionIdSchema`, queue names as `queueNameSchema`). Every ID a
 * command line gives goes through here before anything is sent: an ID goes
 * into request paths, where `a/../b` or a space would name something else.
 * @throws {CliError} (64) `Invalid service ID "X": ...` saying the form, and
 * naming the flag when the value came from one.
 */
export function checkId(kind: IdKind, value: string, options: CheckIdOptions = {}): string {
  const { what, schema } = ID_KINDS[kind];
  const checked = schema.safeParse(value);
  if (checked.success) return value;
  const { flag } = options;
  const example = options.example ??
    (kind === "service" && flag ? FLAG_EXAMPLES[flag] : undefined) ??
    ID_KINDS[kind].example;
  const form = (checked.error.issues[0]?.message ?? "").replace(/^must be /, "");
  throw usage(
    `Invalid ${what} "${echoed(value)}": ${
      flag ? `${flag} takes` : "give"
    } ${form} (e.g. ${example})`,
  );
}

/**
 * The values of string flag `name` (repeated or not), each checked as a
 * `kind` with {@linkcode checkId}; an empty list when the flag is not given.
 * @throws {CliError} (64) for the first invalid value.
 */
export function idFlags(parsed: ParsedArgs, name: string, kind: IdKind): string[] {
  return listFlag(parsed, name).map((value) => checkId(kind, value, { flag: `--${name}` }));
}

/**
 * The value of string flag `name` checked as a `kind` with {@linkcode checkId},
 * or undefined when it is not given.
 * @throws {CliError} (64) when it is invalid (an empty value too).
 */
export function idFlag(parsed: ParsedArgs, name: string, kind: IdKind): string | undefined {
  const value = stringFlag(parsed, name);
  return value === undefined ? undefined : checkId(kind, value, { flag: `--${name}` });
}

/**
 * Refuses positional arguments a command does not take.
 * @throws {CliError} (64) naming the first of `extra` and the help command.
 */
export function noMoreArgs(command: string, extra: string[]): void {
  if (extra.length > 0) {
    throw usage(`Unexpected "${echoed(extra[0]!)}": see "fabricd ${command} --help"`);
  }
}
