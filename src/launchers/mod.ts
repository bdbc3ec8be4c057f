/**
 * Picks the launcher for a launcher URL.
 *
 * @example
 * ```ts
 * import { launcherFor } from "./src/launchers/mod.ts";
 * const launcher = launcherFor("local://", { logDir: "/tmp/logs" });
 * ```
 * @module
 */
import { type Launcher, LauncherUrlError } from "./launcher.ts";
import { LocalLauncher } from "./local.ts";

export {
  type LaunchedProcess,
  type Launcher,
  LauncherUrlError,
  type LaunchSpec,
} from "./launcher.ts";

/** What every launcher may need from its spawner. */
export interface LauncherContext {
  /** Directory for per-service logs on this host. */
  logDir: string;
}

/**
 * The launcher for `url`.
 * @throws {LauncherUrlError} for a malformed URL or one this build cannot launch.
 */
export function launcherFor(url: string, context: LauncherContext): Launcher {
  const scheme = /^([a-z][a-z0-9+]*):\/\//.exec(url)?.[1];
  if (!scheme) {
    throw new LauncherUrlError(
      `Invalid launcher "${url}": use local://, ssh://[user@]host[:port] or slurm://[partition]`,
    );
  }
  if (scheme === "local") {
    if (url !== "local://") {
      throw new LauncherUrlError(`Invalid launcher "${url}": local:// takes no host or path`);
    }
    return new LocalLauncher({ logDir: context.logDir });
  }
  if (scheme === "ssh" || scheme === "slurm" || scheme === "slurm+ssh") {
    throw new LauncherUrlError(
      `Launcher "${scheme}://" is not built yet in this version: use local://`,
    );
  }
  throw new LauncherUrlError(
    `Unknown launcher "${scheme}://": use local://, ssh://[user@]host[:port] or slurm://[partition]`,
  );
}
