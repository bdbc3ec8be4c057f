/**
 * How a task's process is put in its own session (and process group) without
 * making the agent fork.
 *
 * Deno's `detached: true` calls `setsid()` between fork and exec, which rules
 * out `posix_spawn`: every task then costs a `fork()` of the whole agent
 * (its V8 heap's page tables), and two tasks started at once wait for each
 * other (measured again with Deno 2.9.6: 10.6 ms per `/bin/true` against
 * 3.4 ms without it, docs/services.md). So the agent starts, with
 * `posix_spawn`, a program that calls `setsid()` and execs the task in
 * place: it is not a group leader there, and the task keeps the PID that the
 * agent knows, which is also its process group and session ID. That program
 * is the agent's own session helper where it runs (`_session_helper.ts`),
 * else util-linux `setsid(1)`; Deno's `detached` is the last resort.
 * @module
 */
import { resolve } from "../../base/paths.ts";

/** The command that starts a task in its own session. */
export interface SessionCommand {
  /** What to run. */
  command: string;
  /** Its arguments. */
  args: string[];
  /** Whether Deno must make the session itself (no helper, no `setsid(1)` here). */
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
 * The command that runs `task.executable` with `task.args` in a new session,
 * in `task.cwd` with `pathVariable` as its `PATH`: through `helper` (a
 * session helper's path) when given, else `setsid(1)` when the host has it,
 * else with Deno's `detached`.
 * @throws {Error} when the executable cannot be found (not checked for a
 * `detached` start, where Deno itself fails to start it).
 */
export function sessionCommand(
  task: { executable: string; args: readonly string[]; cwd?: string | undefined },
  pathVariable: string | undefined,
  helper?: string,
): SessionCommand {
  const { executable, args } = task;
  const starter = helper ?? setsid();
  if (starter === null) return { command: executable, args: [...args], detached: true };
  const found = findExecutable(executable, pathVariable, task.cwd);
  if ("error" in found) throw new Error(found.error);
  // The helper does not search PATH: it is given the path, then the task's argv.
  const before = helper === undefined ? ["--"] : [found.path];
  return { command: starter, args: [...before, executable, ...args], detached: false };
}

/**
 * The path `execvp` would run for `executable` in `cwd`, or why it cannot be
 * started: a path (with a `/`) must name an executable file, relative to
 * `cwd`; a bare name must be one in a directory of `pathVariable` (the
 * task's `PATH`), the first one, named as `execvp` names it (`DIR/NAME`,
 * relative when `DIR` is). Through a session helper or `setsid(1)` a missing
 * executable would otherwise only show as exit code 127, so the agent checks
 * first and reports that the task could not start.
 */
function findExecutable(
  executable: string,
  pathVariable: string | undefined,
  cwd: string | undefined,
): { path: string } | { error: string } {
  // The task starts in `cwd`: relative paths are relative to it, as for execvp there.
  const taskDir = cwd ?? ".";
  if (executable.includes("/")) {
    const path = resolve(taskDir, executable);
    return isExecutableFile(path)
      ? { path: executable }
      : { error: `"${path}" is not an executable file` };
  }
  for (const dir of (pathVariable ?? "/bin:/usr/bin").split(":")) {
    // As execvp names it: what a script sees as its $0.
    const path = dir === "" ? executable : `${dir.replace(/\/+$/, "")}/${executable}`;
    if (isExecutableFile(resolve(taskDir, path))) return { path };
  }
  return { error: `no executable "${executable}" in PATH "${pathVariable ?? ""}"` };
}

function isExecutableFile(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && (info.mode === null || (info.mode & 0o111) !== 0);
  } catch {
    return false;
  }
}
