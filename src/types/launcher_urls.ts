/**
 * The launcher URLs this build launches with, checked by scheme where a URL
 * is first given (`spawn --on`, `pilot submit --on`, a pilot manager's `on`
 * option) with the same words as the launcher that would refuse it later
 * (launchers/mod.ts). A launcher checks its own host, partition and
 * parameters when it is made.
 * @module
 */

/** Schemes of the launchers this build has: `local://`, `ssh://...`, `slurm://...`. */
export const LAUNCHER_SCHEMES: readonly string[] = ["local", "ssh", "slurm"];

/** The launcher URLs this build takes, as an error message lists them. */
export const LAUNCHER_FORMS = "local://, ssh://[user@]host[:port] or slurm://[partition]";

/** Why no launcher of this build takes a URL. */
export interface LauncherUrlProblem {
  /** The whole message, e.g. `Unknown launcher "ftp://": use local://, ...`. */
  message: string;
  /** What to do instead, to follow a flag's name, e.g. `use local://, ...`. */
  hint: string;
}

const SLURM_SSH_HINT = "spawn a spawner on the head node with ssh://head, then spawn there " +
  "with slurm://[partition]";

/**
 * What is wrong with launcher URL `url` for this build, or null when a
 * launcher takes its scheme: a malformed URL, `local://` with a host or
 * path, `slurm+ssh://` (not built: the way that works instead), or an
 * unknown scheme.
 */
export function launcherUrlProblem(url: string): LauncherUrlProblem | null {
  const scheme = /^([a-z][a-z0-9+]*):\/\//.exec(url)?.[1];
  const forms = `use ${LAUNCHER_FORMS}`;
  if (!scheme) return { message: `Invalid launcher "${url}": ${forms}`, hint: forms };
  if (scheme === "local" && url !== "local://") {
    const hint = "local:// takes no host or path";
    return { message: `Invalid launcher "${url}": ${hint}`, hint };
  }
  if (LAUNCHER_SCHEMES.includes(scheme)) return null;
  if (scheme === "slurm+ssh") {
    return {
      message: `Launcher "slurm+ssh://" is not built yet: ${SLURM_SSH_HINT}`,
      hint: `slurm+ssh:// is not built yet: ${SLURM_SSH_HINT}`,
    };
  }
  return { message: `Unknown launcher "${scheme}://": ${forms}`, hint: forms };
}
