/**
 * Where the control sockets of an SSH connection are: the ControlPath of the
 * user's configuration (a master they opened is borrowed), and the masters
 * that earlier processes of the same owner left behind when they died.
 * @module
 */
import { basename, join } from "../base/paths.ts";

/** A master connection whose owning process died: its ssh pid and its socket. */
export interface OrphanMaster {
  pid: number;
  path: string;
}

/** `ssh -O check` on the socket at `path`, as the connection runs it. */
export type CheckAt = (path: string) => Promise<{ code: number; stderr: string }>;

/**
 * The masters on the sockets beside `controlPath` of the same owner and
 * target (named `STEM-PID`) whose process (PID) no longer runs, as `ssh -O
 * check` on each names them; a socket no master answers on is removed. Such
 * a master (its process was SIGKILLed) may still carry the forwards of the
 * services that process started, so it is left running until the connection
 * that found it closes ({@linkcode endOrphanMasters}).
 */
export async function orphanMasters(controlPath: string, check: CheckAt): Promise<OrphanMaster[]> {
  const dir = controlPath.slice(0, controlPath.length - basename(controlPath).length);
  const stem = `${basename(controlPath).replace(/-\d+$/, "")}-`;
  const found: OrphanMaster[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const owner = Number(entry.name.slice(stem.length));
    if (!entry.name.startsWith(stem) || !Number.isSafeInteger(owner) || owner === Deno.pid) {
      continue;
    }
    if (await processRuns(owner)) continue;
    const path = join(dir, entry.name);
    const answer = await check(path).catch(() => null);
    const pid = Number(/pid=(\d+)/.exec(answer?.stderr ?? "")?.[1]);
    if (answer?.code === 0 && pid > 0) found.push({ pid, path });
    else await Deno.remove(path).catch(() => {});
  }
  return found;
}

/** Ends each master that is still an ssh on its socket (SIGTERM), and removes the socket. */
export async function endOrphanMasters(orphans: readonly OrphanMaster[]): Promise<void> {
  for (const { pid, path } of orphans) {
    const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
    if (cmdline.includes(path)) {
      try {
        Deno.kill(pid, "SIGTERM");
      } catch {
        // Gone meanwhile.
      }
    }
    await Deno.remove(path).catch(() => {});
  }
}

/** Whether process `pid` runs on this host (Linux: it has a `/proc` entry). */
async function processRuns(pid: number): Promise<boolean> {
  return await Deno.stat(`/proc/${pid}`).then(() => true, () => false);
}

/** The ControlPath the user's configuration gives `destination` (`ssh -G` expands it), or null. */
export async function userControlPath(destination: string, port?: number): Promise<string | null> {
  try {
    const out = await new Deno.Command("ssh", {
      args: ["-G", ...(port ? ["-p", String(port)] : []), destination],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    const line = new TextDecoder().decode(out.stdout).split("\n").find((l) =>
      l.startsWith("controlpath ")
    );
    const path = line?.slice("controlpath ".length).trim() ?? "";
    return out.success && path !== "" && path !== "none" ? path : null;
  } catch {
    return null;
  }
}
