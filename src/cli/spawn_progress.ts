/**
 * `fabricd spawn` on a terminal: asks for the streamed `POST /v1/spawn`
 * (docs/protocol.md 5.2) and shows each step on stderr as it begins:
 * connect, copy (with a bar), launch, bootstrap, configure.
 * @module
 */
import { type FabricClient, FabricRequestError, type Target } from "../client/fabric_client.ts";
import type { SpawnResult } from "../types/mod.ts";
import type { SpawnProgress } from "../types/spawn_progress.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";

/** Options of {@linkcode spawnWithProgress}. */
export interface SpawnWithProgressOptions {
  /** The request body of `POST /v1/spawn`. */
  body: unknown;
  /** Time allowed for the whole spawn, ms. Default 120000. */
  timeoutMs?: number;
  /** Where the steps go. Default: stderr. */
  write?: (text: string) => void;
  /** Whether `write` is a terminal (the copy bar then redraws in place). Default: stderr's. */
  terminal?: boolean;
}

/**
 * Spawns through `via` with the streamed answer, showing the steps; returns
 * the spawn's result as the unstreamed call would.
 *
 * @throws {FabricRequestError} with the status and body the unstreamed answer
 * would have had (an `error` event's), status 0 when no answer came in time,
 * 502 when the stream ended without a result.
 */
export async function spawnWithProgress(
  client: FabricClient,
  via: Target,
  options: SpawnWithProgressOptions,
): Promise<SpawnResult> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const show = progressPrinter(
    options.write ?? ((text) => void Deno.stderr.writeSync(new TextEncoder().encode(text))),
    options.terminal ?? Deno.stderr.isTerminal(),
  );
  const ended = new AbortController();
  const timer = setTimeout(() => ended.abort(), timeoutMs);
  let outcome: { result: SpawnResult } | { error: Record<string, unknown> } | undefined;
  try {
    await client.stream(
      via,
      "/v1/spawn",
      (event) => {
        const data = parseObject(event.data);
        if (event.event === "progress") show.step(data as unknown as SpawnProgress);
        else if (event.event === "result") outcome = { result: data as unknown as SpawnResult };
        else if (event.event === "error") outcome = { error: data };
        if (outcome) ended.abort();
      },
      ended.signal,
      { method: "POST", body: options.body },
    );
  } catch (error) {
    if (!outcome) throw timedOut(ended.signal, error, via, timeoutMs);
  } finally {
    clearTimeout(timer);
    show.done();
  }
  if (!outcome) throw timedOut(ended.signal, undefined, via, timeoutMs);
  if ("result" in outcome) return outcome.result;
  const { error } = outcome;
  const status = typeof error.status === "number" ? error.status : 502;
  const message = typeof error.error === "string" ? error.error : `HTTP ${status}`;
  throw new FabricRequestError(message, status, error);
}

function timedOut(
  signal: AbortSignal,
  error: unknown,
  via: Target,
  timeoutMs: number,
): unknown {
  if (!signal.aborted) {
    return error ??
      new FabricRequestError(`The spawn stream of "${via.id}" ended without a result`, 502);
  }
  return new FabricRequestError(`No spawn answer from "${via.id}" within ${timeoutMs} ms`, 0);
}

/** Prints steps; a copy's bar redraws in place on a terminal. */
function progressPrinter(
  write: (text: string) => void,
  terminal: boolean,
): { step(progress: SpawnProgress): void; done(): void } {
  let open = false;
  const close = (): void => {
    if (open) write("\n");
    open = false;
  };
  return {
    step(progress) {
      const line = formatProgress(progress);
      if (progress.step === "copy" && terminal) {
        write(`\r${line}\x1b[K`);
        open = true;
        return;
      }
      close();
      write(`${line}\n`);
    },
    done: close,
  };
}

/**
 * One step as a line: `connect ssh://host`, `copy [#####.....] 12.3/56.0 MB`,
 * `launch ID`, `bootstrap ID`, `configure ENDPOINT`.
 */
export function formatProgress(progress: SpawnProgress): string {
  const detail = progress.detail ? ` ${progress.detail}` : "";
  if (progress.step === "copy" && progress.total !== undefined) {
    const total = progress.total;
    const bytes = Math.min(progress.bytes ?? 0, total);
    const filled = total > 0 ? Math.round((bytes / total) * 10) : 10;
    const bar = "#".repeat(filled) + ".".repeat(10 - filled);
    const mb = (n: number): string => (n / 1e6).toFixed(1);
    return `copy [${bar}] ${mb(bytes)}/${mb(total)} MB`;
  }
  const name = progress.step === "prepare" && /^(ssh|slurm)/.test(progress.detail ?? "")
    ? "connect"
    : progress.step;
  return `${name}${detail}`;
}

function parseObject(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null ? value as Record<string, unknown> : {};
  } catch {
    return {};
  }
}
