/**
 * What most commands start from: the fabric file, the fabric keys and signed
 * clients to the registry and the root spawner.
 * @module
 */
import {
  type FabricFile,
  keyPathOf,
  loadFabricFile,
  resolveFabricPath,
} from "../config/fabric_file.ts";
import { FabricClient, type Target } from "../client/fabric_client.ts";
import { RegistryClient } from "../client/registry_client.ts";
import { targetFor } from "../client/route.ts";
import { type FabricKeys, readKeyFile } from "../crypto/keys.ts";
import { EXIT } from "../types/mod.ts";
import { CliError, recordNamed } from "./cli_error.ts";

/** A loaded fabric. */
export interface FabricContext {
  fabricPath: string;
  fabric: FabricFile;
  keys: FabricKeys;
  client: FabricClient;
  registry: RegistryClient;
}

/**
 * Loads the fabric named by `--fabric`, `FABRIC_FILE` or `~/.fabric/fabric.yaml`.
 * @throws {CliError} 78 when the file is missing or has no registry, 65 when malformed.
 */
export async function loadContext(fabricFlag: string | undefined): Promise<FabricContext> {
  const fabricPath = resolveFabricPath(fabricFlag);
  const fabric = await loadFabricFile(fabricPath);
  const keys = await readFabricKeys(fabricPath, fabric);
  if (fabric.registries.length === 0) {
    throw new CliError(
      `Fabric file "${fabricPath}" names no registry: start the fabric with "fabricd up"`,
      EXIT.CONFIG,
    );
  }
  const client = new FabricClient(keys);
  return {
    fabricPath,
    fabric,
    keys,
    client,
    registry: new RegistryClient(client, fabric.registries),
  };
}

/**
 * Reads the key of the fabric at `fabricPath`: a private file whose
 * fingerprint is the fabric file's.
 * @throws {CliError} 78 for a key file others may read or with another
 * fingerprint; {KeyFileError} (65) for one that cannot be read.
 */
export async function readFabricKeys(fabricPath: string, fabric: FabricFile): Promise<FabricKeys> {
  const keyPath = keyPathOf(fabricPath, fabric);
  await checkKeyFileMode(keyPath);
  const keys = await readKeyFile(keyPath);
  if (keys.fingerprint !== fabric.fingerprint) {
    throw new CliError(
      `Key file of "${fabricPath}" has fingerprint ${keys.fingerprint}, the fabric file says ${fabric.fingerprint}: restore the right key file`,
      EXIT.CONFIG,
    );
  }
  return keys;
}

/**
 * Refuses a key file that group or others may read, as OpenSSH refuses such
 * a private key: whoever reads it controls the fabric. A missing file, a
 * directory, a FIFO or a device is left to the reader, which says what it is.
 * @throws {CliError} 78 with the `chmod` that fixes it.
 */
export async function checkKeyFileMode(path: string): Promise<void> {
  const info = await Deno.stat(path).catch(() => null);
  const mode = info?.mode;
  if (!info?.isFile || mode === null || mode === undefined || (mode & 0o077) === 0) return;
  const octal = (mode & 0o777).toString(8).padStart(4, "0");
  throw new CliError(
    `Key file "${path}" is readable by group or others (mode ${octal}): ` +
      `run chmod 600 "${path}"`,
    EXIT.CONFIG,
  );
}

/**
 * The service to send a request to: `id` looked up in the registry, or the root
 * spawner of the fabric file.
 * @throws {CliError} when the service is unknown or has no endpoint.
 */
export async function targetOf(context: FabricContext, id: string | undefined): Promise<Target> {
  if (!id) {
    if (context.fabric.spawner) return context.fabric.spawner;
    throw new CliError(
      `Fabric file "${context.fabricPath}" names no spawner: start the fabric with "fabricd up" or pass --via ID`,
      EXIT.CONFIG,
    );
  }
  const records = await context.registry.list();
  const record = recordNamed(records, id);
  try {
    return targetFor(record, records);
  } catch (error) {
    throw new CliError((error as Error).message, EXIT.FAILURE);
  }
}
