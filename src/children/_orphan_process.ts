/**
 * Finds and ends a half-started local child whose spawner died: its password
 * died with the spawner, so it can never finish its bootstrap, and it would
 * run beside the restart that replaces it until its own timeout.
 * @module
 */
import type { ServiceRecord } from "../types/mod.ts";

/**
 * Sends SIGKILL to every process on this host started as `--id ID` for a
 * `local://` record (the record's pid if known, else any such process),
 * except this one; returns the pids killed. Other launchers: nothing to do
 * here (their half-started children exit on their own: docs/failures.md).
 */
export function _killOrphanProcess(record: ServiceRecord): number[] {
  if (!record.launcher.startsWith("local://") || Deno.build.os !== "linux") return [];
  const candidates = record.pid > 0 ? [record.pid] : allPids();
  const killed: number[] = [];
  for (const pid of candidates) {
    if (pid === Deno.pid || !startedAs(pid, record.id)) continue;
    try {
      Deno.kill(pid, "SIGKILL");
      killed.push(pid);
    } catch {
      // Gone meanwhile.
    }
  }
  return killed;
}

function allPids(): number[] {
  try {
    return [...Deno.readDirSync("/proc")].map((e) => Number(e.name)).filter((n) =>
      Number.isInteger(n) && n > 0
    );
  } catch {
    return [];
  }
}

function startedAs(pid: number, id: string): boolean {
  try {
    const args = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
    const at = args.indexOf("--id");
    return at >= 0 && args[at + 1] === id && args.includes("--role");
  } catch {
    return false;
  }
}
