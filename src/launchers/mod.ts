/**
 * Picks the launcher for a launcher URL. Launchers are kept per URL, so every
 * spawn to one host shares its SSH connection.
 *
 * @example
 * ```ts
 * import { launcherFor } from "./src/launchers/mod.ts";
 * const launcher = launcherFor("local://", { dir: "/tmp/fabric" });
 * ```
 * @module
 */
import { log } from "../config/logging.ts";
import { launcherUrlProblem } from "../types/launcher_urls.ts";
import { type Launcher, LauncherUrlError } from "./launcher.ts";
import { LocalLauncher } from "./local.ts";
import { SlurmLauncher } from "./slurm.ts";
import { SshLauncher } from "./ssh.ts";
import { parseSshUrl } from "./ssh_connection.ts";
import { slurmUrlSettings } from "./slurm_url.ts";

export { type BatchJob, batchJobs, type BatchPhase } from "./batch_jobs.ts";
export {
  type ChildView,
  type LaunchedProcess,
  type Launcher,
  LauncherUrlError,
  type LaunchSpec,
} from "./launcher.ts";

/** What every launcher may need from its spawner. */
export interface LauncherContext {
  /** The spawner's state directory (logs, control sockets, caches). */
  dir: string;
  /**
   * The spawner's service ID: what a launcher keeps for it in `dir` (the
   * Slurm launcher's relay ports, the SSH launcher's control sockets) is its
   * own, apart from other services sharing `dir`, and found again by its
   * next incarnation.
   */
  owner?: string;
}

const launchers = new Map<string, Launcher>();

/**
 * Checks launcher URL `url` as {@linkcode launcherFor} would, its host,
 * partition and parameters included, without making a launcher or starting
 * anything: for a command that must refuse a bad URL before it sends it.
 * @throws {LauncherUrlError} with the launcher's own words, e.g. `Invalid
 * launcher "slurm://x?wait=soon": wait must be a number of seconds`.
 */
export function checkLauncherUrl(url: string): void {
  const problem = launcherUrlProblem(url);
  if (problem) throw new LauncherUrlError(problem.message);
  try {
    if (url.startsWith("ssh://")) parseSshUrl(url);
    else if (url.startsWith("slurm://")) slurmUrlSettings(url);
  } catch (error) {
    throw new LauncherUrlError((error as Error).message);
  }
}

/**
 * The launcher for `url`.
 * @throws {LauncherUrlError} for a malformed URL or one this build cannot launch.
 */
export function launcherFor(url: string, context: LauncherContext): Launcher {
  const problem = launcherUrlProblem(url);
  if (problem) throw new LauncherUrlError(problem.message);
  const key = `${context.dir}|${url}`;
  const known = launchers.get(key);
  if (known) return known;
  let launcher: Launcher;
  if (url === "local://") {
    launcher = new LocalLauncher({ dir: context.dir });
  } else if (url.startsWith("ssh://")) {
    try {
      launcher = new SshLauncher(url, {
        dir: context.dir,
        ...(context.owner ? { owner: context.owner } : {}),
      });
    } catch (error) {
      throw new LauncherUrlError((error as Error).message);
    }
  } else {
    // slurm://: launcherUrlProblem() lets through no other scheme.
    try {
      launcher = new SlurmLauncher(url, {
        dir: context.dir,
        ...(context.owner ? { owner: context.owner } : {}),
      });
    } catch (error) {
      throw new LauncherUrlError((error as Error).message);
    }
  }
  launchers.set(key, launcher);
  return launcher;
}

/**
 * Closes every launcher this process made (their SSH master connections and
 * forwards); the services they started keep running. Called when a service stops.
 */
export async function closeLaunchers(): Promise<void> {
  const all = [...launchers.values()];
  launchers.clear();
  await Promise.all(
    all.map((launcher) =>
      launcher.close?.().catch((error) =>
        log("launchers").debug("Cannot close a launcher: {error}", { error: String(error) })
      )
    ),
  );
}
