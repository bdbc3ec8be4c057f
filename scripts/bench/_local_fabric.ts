/**
 * A local fabric (registry + root spawner, real processes) in a temporary
 * directory for the length of one benchmark; always stopped and removed after.
 * @module
 */
import { join } from "node:path";
import { initFabric } from "../../src/cli/init.ts";
import { type LocalFabric, startLocalFabric } from "../../src/cli/local_fabric.ts";

/** Runs `fn` on a fresh local fabric whose services heartbeat every `heartbeatMs`. */
export async function withBenchFabric<T>(
  name: string,
  heartbeatMs: number,
  fn: (local: LocalFabric, dir: string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: `fabricd-bench-${name}-` });
  let local: LocalFabric | null = null;
  try {
    const fabricPath = join(dir, "fabric.yaml");
    local = await startLocalFabric(fabricPath, await initFabric(fabricPath), {
      dir,
      port: 0,
      heartbeatMs,
    });
    return await fn(local, dir);
  } finally {
    if (local) await local.stopAll("benchmark finished").catch(() => 0);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
