/**
 * How a task's process is put in its own session (and process group) without
 * making the agent fork.
 *
 * Deno's `detached: true` calls `setsid()` between fork and exec, which rules
 * out `posix_spawn`: every task then costs a `fork()` of the whole agent
 * (its V8 heap's page tables), about 1 ms of the agent's CPU, and two tasks
 * started at once wait for each other (measured: 2.1 ms per `/bin/true` with
 * two at a time, against 0.9 ms through `setsid(1)`). So where `setsid(1)`
 * exists the agent starts `setsid -- EXECUTABLE ARGS...` with `posix_spawn`:
 * `setsid` is not a group leader there, so it calls `setsid()` and execs the
 * task in place, and the task keeps the PID that the agent knows, which is
 * also its process group and session ID.
 * @module
 */
import { isAbsolute, join } from "../../base/paths.ts";

/** The command that starts a task in its own session. */
export interface SessionCommand {
  /** What to run. */
  command: string;
  /** Its arguments. */
  args: string[];
  /** Whether Deno must make the session itself (no `setsid(1)` here). */
  detached: boolean;
}

let setsidPath: string | null | undefined;

/** `setsid(1)`'s path, or null when this host has none; looked up once. */
function setsid(): string | null {
  if (setsidPath === undefined) {
    setsidPath = ["/usr/bin/setsid", "/bin/setsid"].find(isExecutableFile) ?? null;
  }
  return setsidPath;
}

/**
 * The command that runs `executable` with `args` in a new session: through
 * `setsid(1)` when the host has it, else with Deno's `detached`.
 */
export function sessionCommand(executable: string, args: readonly string[]): SessionCommand {
  const path = setsid();
  if (path === null) return { command: executable, args: [...args], detached: true };
  return { command: path, args: ["--", executable, ...args], detached: false };
}

/**
 * Why `executable` cannot be started, or null when it can: a path (with a
 * `/`) must name an executable file, relative to `cwd`; a bare name must be
 * one in a directory of `pathVariable` (the task's `PATH`), as `execvp` would
 * find it. Through `setsid(1)` a missing executable would otherwise only show
 * as exit code 127, so the agent checks first and reports that the task could
 * not start.
 */
export function cannotStart(
  executable: string,
  pathVariable: string | undefined,
  cwd: string | undefined,
): string | null {
  if (executable.includes("/")) {
    const path = isAbsolute(executable) ? executable : join(cwd ?? Deno.cwd(), executable);
    return isExecutableFile(path) ? null : `"${path}" is not an executable file`;
  }
  const dirs = (pathVariable ?? "/bin:/usr/bin").split(":");
  const found = dirs.some((dir) => isExecutableFile(join(dir || cwd || Deno.cwd(), executable)));
  return found ? null : `no executable "${executable}" in PATH "${pathVariable ?? ""}"`;
}

function isExecutableFile(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && (info.mode === null || (info.mode & 0o111) !== 0);
  } catch {
    return false;
  }
}
