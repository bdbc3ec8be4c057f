/**
 * Runs `fabricd` as a subprocess that cannot hang a test: SIGTERM after a
 * time limit (20 s by default), SIGKILL 10 s later, and `timedOut` says so.
 */
import { FABRICD } from "../e2e/_fabric.ts";

/** Options of {@linkcode runGuarded}. */
export interface RunGuardedOptions {
  /** Variables added to the environment. Default none. */
  env?: Record<string, string>;
  /** Time before SIGTERM, ms. Default 20000. */
  timeoutMs?: number;
}

/** What a guarded run of `fabricd` gave. */
export interface GuardedRun {
  code: number;
  stdout: string;
  stderr: string;
  /** Whether it was still running at the time limit (and was stopped). */
  timedOut: boolean;
}

/** Runs `fabricd args`, stopping it at the time limit. */
export async function runGuarded(
  args: string[],
  options: RunGuardedOptions = {},
): Promise<GuardedRun> {
  const child = new Deno.Command(FABRICD[0]!, {
    args: [...FABRICD.slice(1), ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(options.env ? { env: options.env } : {}),
  }).spawn();
  const limit = options.timeoutMs ?? 20_000;
  let timedOut = false;
  const signal = (name: Deno.Signal): void => {
    try {
      child.kill(name);
    } catch {
      // Already gone.
    }
  };
  const term = setTimeout(() => {
    timedOut = true;
    signal("SIGTERM");
  }, limit);
  const kill = setTimeout(() => signal("SIGKILL"), limit + 10_000);
  try {
    const out = await child.output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
      timedOut,
    };
  } finally {
    clearTimeout(term);
    clearTimeout(kill);
  }
}
