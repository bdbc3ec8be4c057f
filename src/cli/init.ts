/**
 * `fabricd init`: creates the fabric key pair and the fabric file.
 * @module
 */
import { dirname, join } from "../base/paths.ts";
import {
  EMPTY_FABRIC_FLAG,
  type FabricFile,
  resolveFabricPath,
  saveFabricFile,
} from "../config/fabric_file.ts";
import { generateFabricKeys, writeKeyFile } from "../crypto/keys.ts";
import { EXIT } from "../types/mod.ts";
import { noMoreArgs, parseFlags, stringFlag } from "./args.ts";
import { CliError, usage } from "./cli_error.ts";

/** Help text of `fabricd init`. */
export const INIT_HELP = `fabricd init [--fabric FILE | --dir DIR] [--force]

Creates the fabric key pair (fabric.key, mode 0600) and the fabric file
(fabric.yaml) beside it. Refuses to overwrite an existing fabric without --force.

  --fabric FILE   fabric file to create (default: FABRIC_FILE, then ~/.fabric/fabric.yaml)
  --dir DIR       create DIR/fabric.yaml
  --force         replace an existing fabric file and key (the old fabric becomes unreachable)

Exit codes: 0 created; 64 usage (e.g. an empty --fabric); 73 the directory,
key or fabric file cannot be created (the path and the reason are named); 78
the fabric exists.
`;

/** Options of {@linkcode initFabric}. */
export interface InitOptions {
  force?: boolean;
}

/**
 * Creates keys and fabric file at `fabricPath`; returns the new fabric file.
 * @throws {CliError} 78 when the fabric exists and `force` is not set; 73 when
 * its directory, key or file cannot be created (the path and the reason named).
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
  const keys = await generateFabricKeys();
  const keyName = "fabric.key";
  const fabric: FabricFile = {
    version: 1,
    key: keyName,
    fingerprint: keys.fingerprint,
    registries: [],
    sessions: [],
  };
  let step: "directory" | "key" | "file" = "directory";
  try {
    await Deno.mkdir(dirname(fabricPath), { recursive: true, mode: 0o700 });
    step = "key";
    await writeKeyFile(join(dirname(fabricPath), keyName), keys, {
      force: options.force ?? false,
    });
    step = "file";
    await saveFabricFile(fabricPath, fabric);
  } catch (error) {
    // A key file without its fabric file: writeKeyFile's message says to use --force (78).
    if (step === "key" && error instanceof Deno.errors.AlreadyExists) throw error;
    throw cannotCreate(fabricPath, error);
  }
  return fabric;
}

/** The error (73) for a fabric that cannot be created at `fabricPath`: path, reason, remedy. */
function cannotCreate(fabricPath: string, error: unknown): CliError {
  const notDirectory = error instanceof Deno.errors.AlreadyExists ||
    error instanceof Deno.errors.NotADirectory;
  const why = notDirectory
    ? `"${dirname(fabricPath)}" or a directory above it is a file, not a directory`
    : error instanceof Error
    ? error.message
    : String(error);
  return new CliError(
    `Cannot create fabric file "${fabricPath}": ${why}: give a --fabric (or --dir) ` +
      "in a directory you can write",
    EXIT.CANNOT_CREATE,
    { cause: error },
  );
}

/** Runs `fabricd init`. */
export async function initCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("init", args, {
    fabric: { type: "string" },
    dir: { type: "string" },
    force: { type: "boolean" },
  });
  noMoreArgs("init", parsed.positionals);
  if (parsed.flags.help) {
    console.log(INIT_HELP);
    return EXIT.OK;
  }
  const dir = stringFlag(parsed, "dir");
  const fabricFlag = stringFlag(parsed, "fabric");
  if (dir === "") throw usage("Empty --dir: give a directory, or leave --dir out");
  if (fabricFlag === "") throw usage(EMPTY_FABRIC_FLAG);
  const fabricPath = resolveFabricPath(dir ? join(dir, "fabric.yaml") : fabricFlag);
  const fabric = await initFabric(fabricPath, { force: parsed.flags.force === true });
  console.log(`Created fabric ${fabric.fingerprint}`);
  console.log(`  fabric file: ${fabricPath}`);
  console.log(`  key file:    ${join(dirname(fabricPath), fabric.key)} (keep it secret)`);
  console.log(`Next: fabricd up --fabric ${fabricPath}`);
  return EXIT.OK;
}
