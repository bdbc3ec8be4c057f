/**
 * A fabric file naming a registry nobody listens on (a port taken and
 * released): commands get past loading it, and find the fabric not running.
 * @module
 */
import { join } from "node:path";
import { loadFabricFile, saveFabricFile } from "../../src/config/fabric_file.ts";
import { initFabric } from "../../src/cli/init.ts";

/** Makes `DIR/fabric.yaml` (and its key) naming a registry and spawner nobody listens on; its path. */
export async function stoppedFabric(dir: string): Promise<string> {
  const fabric = join(dir, "fabric.yaml");
  await initFabric(fabric);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await saveFabricFile(fabric, {
    ...await loadFabricFile(fabric),
    registries: [{ id: "reg-0000dead", url: `http://127.0.0.1:${port}` }],
    spawner: { id: "spw-0000dead", url: `http://127.0.0.1:${port}` },
  });
  return fabric;
}
