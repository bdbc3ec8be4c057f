/**
 * A small typed layer over `node:util` `parseArgs`: unknown flags and missing
 * values become usage errors (exit 64) that name the flag and the help command.
 * @module
 */
import { parseArgs } from "node:util";
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
 * Parses `args` for `command`.
 * @throws {CliError} (64) on an unknown flag or a flag without its value.
 */
export function parseFlags(
  command: string,
  args: string[],
  spec: Record<string, FlagSpec>,
): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { ...spec, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    return { flags: values as ParsedArgs["flags"], positionals };
  } catch (error) {
    throw usage(`${flagProblem(error)}: see "fabricd ${command} --help"`);
  }
}

/**
 * `parseArgs`' complaint in the house style: its own messages are long and
 * advise `-- "--flag"`, which is rarely what was meant.
 */
function flagProblem(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown }).code;
  const flag = /'(-[^']*)'/.exec(message)?.[1] ?? /"(-[^"]*)"/.exec(message)?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && flag) return `Unknown flag "${flag}"`;
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && flag) {
    return /argument missing/.test(message)
      ? `Flag "${flag.split(" ")[0]}" needs a value`
      : `Flag "${flag.split(" ")[0]}" takes no value`;
  }
  return message.split("\n")[0] ?? message;
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
