/**
 * A fabric run from the test network's desktop (`fabricd up` in the desktop
 * namespace) and the `fabricd` command there, for the tests that grow it
 * over SSH. The desktop runs this checkout's image, built here, outside the
 * namespaces (where the network is), as `.ci/run` and a user would; nothing in
 * the test network ever bundles.
 */
import { dirname } from "node:path";
import { LAUNCHER } from "../../src/image/image_dir.ts";
import { selfImage } from "../../src/image/self_image.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";
import { type CommandResult, testnetExec, testnetSpawn } from "./_testnet.ts";

/** Deno's cache, shared with the hosts (their homes differ from this one's). */
export const DENO_DIR: string = Deno.env.get("DENO_DIR") ??
  `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;

/** The image directory of this checkout (built once per source hash, outside the test network). */
export async function checkoutImageDir(): Promise<string> {
  const image = await selfImage();
  return dirname(image.files.find((f) => f.name === LAUNCHER)!.path);
}

/** Whether `status --json` answered with the registry and the root spawner ALIVE. */
function rootsAlive(status: CommandResult): boolean {
  if (status.code !== 0) return false;
  try {
    const { services } = JSON.parse(status.stdout) as { services: ServiceRecord[] };
    return ["registry", "spawner"].every((role) =>
      services.some((r) => r.role === role && r.state === "ALIVE")
    );
  } catch {
    return false;
  }
}

/** Options of {@linkcode withDesktopFabric}. */
export interface DesktopFabricOptions {
  /** Environment of every fabricd process on the desktop. Default: `DENO_DIR` shared with this one. */
  env?: Record<string, string>;
}

/** A running desktop fabric. */
export interface DesktopFabric {
  /** Its state directory (fabric file, logs). */
  dir: string;
  /**
   * Runs `fabricd COMMAND ARGS...` on the desktop against this fabric
   * (`--fabric` goes right after the command, ahead of any `--`); with
   * `timeoutS`, a command still running then is killed (exit 124).
   */
  fabricd(args: string[], options?: { timeoutS?: number }): Promise<CommandResult>;
}

/**
 * Starts `fabricd up` on the desktop in a new directory, waits until
 * `status` answers, runs `fn`, then stops `up` and removes the directory.
 * @throws {Error} when the fabric does not answer within 20 s.
 */
export async function withDesktopFabric<T>(
  prefix: string,
  fn: (fabric: DesktopFabric) => Promise<T>,
  options: DesktopFabricOptions = {},
): Promise<T> {
  const FABRICD = [`${await checkoutImageDir()}/${LAUNCHER}`];
  const env = Object.entries(options.env ?? { DENO_DIR }).map(([k, v]) => `${k}=${v}`);
  const dir = await Deno.makeTempDir({ prefix });
  const fabric = `${dir}/fabric.yaml`;
  const fabricd = (args: string[], options: { timeoutS?: number } = {}) =>
    testnetExec("desktop", [
      ...(options.timeoutS ? ["timeout", String(options.timeoutS)] : []),
      "env",
      ...env,
      ...FABRICD,
      ...args.slice(0, 1),
      "--fabric",
      fabric,
      ...args.slice(1),
    ]);
  const up = testnetSpawn("desktop", [
    "env",
    ...env,
    ...FABRICD,
    "up",
    "--dir",
    dir,
    "--heartbeat-ms",
    "1000",
  ]);
  try {
    // `status` answers as soon as the registry does, which can be before the
    // root spawner has registered: wait for both roots ALIVE.
    const deadline = Date.now() + 20_000;
    while (!rootsAlive(await fabricd(["status", "--json"]))) {
      if (Date.now() > deadline) throw new Error("The desktop fabric did not come up within 20 s");
      await new Promise((r) => setTimeout(r, 200));
    }
    return await fn({ dir, fabricd });
  } finally {
    try {
      up.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await up.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
