/**
 * Command-line flags for every command: unknown flags and missing values become
 * usage errors (exit 64) that name the flag and the help command. Hand-written
 * rather than `node:util` `parseArgs`, so that a command whose own code needs no
 * Node module starts without Deno's Node compatibility layer (docs/performance.md,
 * cli-latency).
 * @module
 */
import { usage } from "./cli_error.ts";

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
 * its last value unless it is `multiple`.
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
    if (!option) return fail(`Unknown flag "${given}"`);
    if (option.type === "boolean") {
      if (inline !== undefined) fail(`Flag "${given}" takes no value`);
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
      if (value === undefined || (value.startsWith("-") && value !== "-")) {
        return fail(`Flag "${arg}" needs a value`);
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
        fail(`Unknown flag "${arg}"`);
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
 * A positive integer flag, or `fallback`.
 * @throws {CliError} (64) when the value is not a positive integer.
 */
export function intFlag(parsed: ParsedArgs, name: string, fallback: number): number {
  const value = stringFlag(parsed, name);
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw usage(`Invalid --${name} "${value}": give a whole number, 0 or more`);
  }
  return n;
}

/**
 * A repeated `--name KEY=VALUE` flag as an object.
 * @throws {CliError} (64) when a value has no `=` or an empty key.
 */
export function keyValueFlag(parsed: ParsedArgs, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of listFlag(parsed, name)) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw usage(`Invalid --${name} "${pair}": use KEY=VALUE`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/**
 * A duration flag (`500ms`, `10s`, `2m`, `1h`; a bare number is seconds) in
 * ms, or `fallback`.
 * @throws {CliError} (64) when the value is not such a duration.
 */
export function durationFlag(parsed: ParsedArgs, name: string, fallback: number): number {
  const value = stringFlag(parsed, name);
  if (value === undefined) return fallback;
  const match = /^(\d{1,9}(?:\.\d{1,3})?)(ms|s|m|h)?$/.exec(value);
  if (!match) {
    throw usage(`Invalid --${name} "${value}": give a duration such as 500ms, 10s, 2m or 1h`);
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "s"] ?? 1000;
  return Math.round(Number(match[1]) * unit);
}
