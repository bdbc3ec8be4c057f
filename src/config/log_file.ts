/**
 * A service's own log file, read back bounded: its tail, and what is appended
 * later (`GET /v1/logs`, `fabricd logs`). Every launcher writes a service's
 * output to `DIR/logs/ID.log` of the `--dir` it gives the service.
 * @module
 */
import { join } from "../base/paths.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";

/** Most bytes of the log that one answer carries: the tail of what matches. */
export const LOG_ANSWER_BYTES = 256 * 1024;

/** Most bytes read from the log at once while following it. */
export const LOG_CHUNK_BYTES = 64 * 1024;

/** Where service `id` with state directory `dir` writes its log. */
export function serviceLogPath(dir: string, id: string): string {
  return join(dir, "logs", `${id}.log`);
}

/** Options of {@linkcode readLogTail}. */
export interface LogTailOptions {
  /** Drop lines stamped before this time, ms since the epoch. Default: keep every line. */
  since?: number | undefined;
  /** Most bytes read from the end of the file. Default {@linkcode LOG_ANSWER_BYTES}. */
  maxBytes?: number;
}

/** The end of a log file, in whole lines. */
export interface LogTail {
  lines: string[];
  /** Byte offset just past the last whole line: where following goes on. */
  end: number;
  /** True when the file holds older bytes than the ones read. */
  truncated: boolean;
}

/**
 * The last whole lines of the log at `path`, at most `maxBytes` of them, less
 * those stamped before `since` (the `@timestamp` of fabricd's JSON lines; a
 * line without one goes with the line before it).
 * @throws {Deno.errors.NotFound} when there is no such file.
 */
export async function readLogTail(path: string, options: LogTailOptions = {}): Promise<LogTail> {
  const maxBytes = options.maxBytes ?? LOG_ANSWER_BYTES;
  const file = await Deno.open(path, { read: true });
  try {
    const size = (await file.stat()).size;
    const start = Math.max(0, size - maxBytes);
    const bytes = await readAt(file, start, size - start);
    let first = 0;
    if (start > 0) first = bytes.indexOf(10) + 1;
    const last = bytes.lastIndexOf(10);
    if (last < first) return { lines: [], end: start + first, truncated: start > 0 };
    const lines = splitLines(bytes.subarray(first, last));
    return {
      lines: options.since === undefined ? lines : linesSince(lines, options.since),
      end: start + last + 1,
      truncated: start > 0,
    };
  } finally {
    file.close();
  }
}

/** Options of {@linkcode followLog}. */
export interface FollowLogOptions {
  /** Ends following. */
  signal: AbortSignal;
  /** How often the file is looked at when nothing is new, ms. Default 250. */
  pollMs?: number;
  /** Most bytes read at once. Default {@linkcode LOG_CHUNK_BYTES}. */
  chunkBytes?: number;
}

/**
 * Calls `onLines` with each whole line appended to the log at `path` after byte
 * `from`, until `signal` aborts. It reads the next chunk only once `onLines`
 * has resolved, so a slow reader holds at most one chunk. A line longer than a
 * chunk comes in pieces; a file that shrank (rotated) is read from its start.
 */
export async function followLog(
  path: string,
  from: number,
  onLines: (lines: string[]) => Promise<void>,
  options: FollowLogOptions,
): Promise<void> {
  const chunkBytes = options.chunkBytes ?? LOG_CHUNK_BYTES;
  let offset = from;
  while (!options.signal.aborted) {
    const file = await Deno.open(path, { read: true }).catch(() => null);
    let lines: string[] = [];
    if (file) {
      try {
        const size = (await file.stat()).size;
        if (size < offset) offset = 0;
        const bytes = await readAt(file, offset, Math.min(chunkBytes, size - offset));
        const last = bytes.lastIndexOf(10);
        const cut = last >= 0 ? last : bytes.length === chunkBytes ? bytes.length : -1;
        if (cut >= 0) {
          lines = splitLines(bytes.subarray(0, cut));
          offset += last >= 0 ? cut + 1 : cut;
        }
      } finally {
        file.close();
      }
    }
    if (lines.length > 0) await onLines(lines);
    else await pause(options.pollMs ?? 250, options.signal);
  }
}

/** Reads up to `length` bytes at `offset`. */
async function readAt(file: Deno.FsFile, offset: number, length: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(Math.max(0, length));
  await file.seek(offset, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < bytes.length) {
    const n = await file.read(bytes.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return bytes.subarray(0, filled);
}

function splitLines(bytes: Uint8Array): string[] {
  return new TextDecoder().decode(bytes).split("\n").map((line) => line.replace(/\r$/, ""));
}

function linesSince(lines: string[], since: number): string[] {
  let keep = false;
  return lines.filter((line) => {
    const stamp = timestampOf(line);
    if (stamp !== undefined) keep = stamp >= since;
    return keep;
  });
}

/** The `@timestamp` of a JSON log line, ms since the epoch. */
function timestampOf(line: string): number | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const stamp = (JSON.parse(line) as Record<string, unknown>)["@timestamp"];
    const ms = typeof stamp === "string" ? Date.parse(stamp) : NaN;
    return Number.isNaN(ms) ? undefined : ms;
  } catch {
    return undefined;
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}
