import { join } from "node:path";
import { initFabric } from "../../src/cli/init.ts";
import { type LocalFabric, startLocalFabric } from "../../src/cli/local_fabric.ts";
import type { Target } from "../../src/client/fabric_client.ts";
import type { SpawnResult } from "../../src/types/mod.ts";

/** The command that runs this checkout's fabricd from source. */
export const FABRICD = [
  Deno.execPath(),
  "run",
  "--quiet",
  "--allow-all",
  new URL("../../main.ts", import.meta.url).pathname,
];

/** A temporary directory removed after `fn`, even when it throws. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "fabricd-test-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * A running local fabric (registry + root spawner, real processes) for `fn`;
 * stops every service afterwards and kills any that did not stop.
 */
export async function withLocalFabric<T>(
  fn: (fabric: LocalFabric, dir: string) => Promise<T>,
  options: { heartbeatMs?: number } = {},
): Promise<T> {
  return await withTempDir(async (dir) => {
    const fabricPath = join(dir, "fabric.yaml");
    const fabric = await initFabric(fabricPath);
    const local = await startLocalFabric(fabricPath, fabric, {
      dir,
      port: 0,
      heartbeatMs: options.heartbeatMs ?? 500,
    });
    try {
      return await fn(local, dir);
    } finally {
      const pids = (await local.registry.list().catch(() => [])).map((r) => r.pid);
      await local.stopAll("test finished").catch(() => 0);
      for (const pid of pids) killQuietly(pid);
    }
  });
}

/** Sends SIGKILL to `pid` if it is still there. */
export function killQuietly(pid: number): void {
  if (pid <= 0) return;
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Runs fabricd with `args`; resolves with its exit code and output. */
export async function runFabricd(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(FABRICD[0]!, {
    args: [...FABRICD.slice(1), ...args],
    stdout: "piped",
    stderr: "piped",
    ...(options.env ? { env: options.env } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Spawns a service of `role` on `local://` through `via` (default: the root spawner). */
export function spawnLocal(
  local: LocalFabric,
  role: string,
  options: Record<string, string> = {},
  via: Target = local.spawner,
): Promise<SpawnResult> {
  return local.client.call<SpawnResult>(via, {
    method: "POST",
    path: "/v1/spawn",
    body: { role, on: "local://", options },
  }, { timeoutMs: 60_000 });
}
