/**
 * `fabricd init`: creates the fabric key pair and the fabric file.
 * @module
 */
import { dirname, join } from "../base/paths.ts";
import { type FabricFile, resolveFabricPath, saveFabricFile } from "../config/fabric_file.ts";
import { generateFabricKeys, writeKeyFile } from "../crypto/keys.ts";
import { EXIT } from "../types/mod.ts";
import { parseFlags, stringFlag } from "./args.ts";
import { CliError } from "./cli_error.ts";

/** Help text of `fabricd init`. */
export const INIT_HELP = `fabricd init [--fabric FILE | --dir DIR] [--force]

Creates the fabric key pair (fabric.key, mode 0600) and the fabric file
(fabric.yaml) beside it. Refuses to overwrite an existing fabric without --force.

  --fabric FILE   fabric file to create (default: FABRIC_FILE, then ~/.fabric/fabric.yaml)
  --dir DIR       create DIR/fabric.yaml
  --force         replace an existing fabric file and key (the old fabric becomes unreachable)
`;

/** Options of {@linkcode initFabric}. */
export interface InitOptions {
  force?: boolean;
}

/**
 * Creates keys and fabric file at `fabricPath`; returns the new fabric file.
 * @throws {CliError} 78 when the fabric exists and `force` is not set.
 */
export async function initFabric(
  fabricPath: string,
  options: InitOptions = {},
): Promise<FabricFile> {
  const exists = await Deno.stat(fabricPath).then(() => true, () => false);
  if (exists && !options.force) {
    throw new CliError(
      `Fabric file "${fabricPath}" exists: keep it, or run "fabricd init --force" to replace it`,
      EXIT.CONFIG,
    );
  }
  await Deno.mkdir(dirname(fabricPath), { recursive: true, mode: 0o700 });
  const keys = await generateFabricKeys();
  const keyName = "fabric.key";
  await writeKeyFile(join(dirname(fabricPath), keyName), keys, { force: options.force ?? false });
  const fabric: FabricFile = {
    version: 1,
    key: keyName,
    fingerprint: keys.fingerprint,
    registries: [],
    sessions: [],
  };
  await saveFabricFile(fabricPath, fabric);
  return fabric;
}

/** Runs `fabricd init`. */
export async function initCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("init", args, {
    fabric: { type: "string" },
    dir: { type: "string" },
    force: { type: "boolean" },
  });
  if (parsed.flags.help) {
    console.log(INIT_HELP);
    return EXIT.OK;
  }
  const dir = stringFlag(parsed, "dir");
  const fabricPath = resolveFabricPath(
    dir ? join(dir, "fabric.yaml") : stringFlag(parsed, "fabric"),
  );
  const fabric = await initFabric(fabricPath, { force: parsed.flags.force === true });
  console.log(`Created fabric ${fabric.fingerprint}`);
  console.log(`  fabric file: ${fabricPath}`);
  console.log(`  key file:    ${join(dirname(fabricPath), fabric.key)} (keep it secret)`);
  console.log(`Next: fabricd up --fabric ${fabricPath}`);
  return EXIT.OK;
}
