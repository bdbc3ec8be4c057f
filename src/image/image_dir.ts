/**
 * The image directory: what a host needs to run fabricd, as files named in a
 * SHA-256 manifest written when the image is built. The same layout is the
 * output of `fabricd image build`, an entry of the cache on every host
 * (`~/.cache/fabricd/<hash>/`) and an installed copy:
 *
 * ```
 * fabricd        the launcher: runs js/main.js with this deno, offline
 * deno           the Deno runtime
 * js/main.js     the bundle's entry, beside its chunks (js/chunk-*.js)
 * manifest       "<sha256>  <path>" per file, sorted: `sha256sum -c manifest` checks it
 * packed/        deno.zst: large files compressed once (zstd -9, with zstd's content
 *                checksum) at build time, shipped as they are and kept by every host that
 *                received them, to pass down the chain; packed/manifest lists their SHA-256
 * .complete      written last: a directory without it is unfinished
 * ```
 *
 * The manifest names the files; `packed/manifest` their compressed forms. A
 * file that travels compressed is checked by the SHA-256 of its compressed
 * form (decompression is deterministic, so that fixes the content) and by
 * zstd's own checksum of the content.
 *
 * A compiled image (`deno compile`) has `fabricd` alone. The image hash is
 * SHA-256 over the manifest, so the same files give the same hash anywhere.
 * @module
 */
import { sha256FileHex, sha256Hex } from "../crypto/hash.ts";
import { join } from "../base/paths.ts";

/** File listing the image's files with their SHA-256. */
export const MANIFEST = "manifest";

/** Marker written after everything else: the image is whole. */
export const COMPLETE = ".complete";

/** The executable at the root of every image. */
export const LAUNCHER = "fabricd";

/** Folder of an image's compressed forms: `packed/NAME.zst`. */
export const PACKED = "packed";

/** The bundle's entry, relative to the image directory. */
export const ENTRY = "js/main.js";

/** One file of an image. */
export interface ImageFile {
  /** Path inside the image directory, with `/` separators: `deno`, `js/main.js`. */
  name: string;
  /** Where it is on this host. */
  path: string;
  sha256: string;
  size: number;
  /** Its compressed form (`packed/NAME.zst`) on this host, when the image has one. */
  packed?: string;
  /** SHA-256 of the compressed form, from `packed/manifest`. */
  packedSha256?: string;
}

/** A content-addressed image. */
export interface SelfImage {
  /** `binary`: one compiled executable; `bundle`: deno, launcher and bundle. */
  kind: "binary" | "bundle";
  /** SHA-256 over the manifest: names the cache directory on every host. */
  hash: string;
  /** The manifest's text, as written at build time and shipped unchanged. */
  manifest: string;
  files: ImageFile[];
}

/** A directory that is not a whole image. */
export class ImageDirError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ImageDirError";
  }
}

/** The manifest's text for `files` (sorted by name, as `sha256sum` writes it). */
export function manifestText(files: readonly { name: string; sha256: string }[]): string {
  return [...files].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    .map((f) => `${f.sha256}  ${f.name}\n`).join("");
}

/** The image hash of a manifest's text. */
export function imageHash(manifest: string): string {
  return sha256Hex(`fabricd-image-v2\n${manifest}`);
}

/**
 * Reads the image in `dir` from its manifest, without hashing its files again
 * (they were hashed when it was built or verified on arrival).
 * @throws {ImageDirError} when the manifest or a file is missing or malformed.
 */
export async function readImageDir(dir: string): Promise<SelfImage> {
  let manifest: string;
  try {
    await Deno.stat(join(dir, COMPLETE));
    manifest = await Deno.readTextFile(join(dir, MANIFEST));
  } catch (error) {
    throw new ImageDirError(
      `"${dir}" is not a whole fabricd image (no ${MANIFEST} or ${COMPLETE}): build one with "fabricd image build --out DIR"`,
      { cause: error },
    );
  }
  const packedHashes = parseManifest(
    await Deno.readTextFile(join(dir, PACKED, MANIFEST)).catch(() => ""),
  );
  const files: ImageFile[] = [];
  for (const line of manifest.split("\n").filter(Boolean)) {
    const match = /^([0-9a-f]{64}) {2}([A-Za-z0-9._/-]+)$/.exec(line);
    if (!match || match[2]!.split("/").some((part) => part === ".." || part === "")) {
      throw new ImageDirError(`Malformed line in "${join(dir, MANIFEST)}": "${line}"`);
    }
    const path = join(dir, match[2]!);
    let size: number;
    try {
      size = (await Deno.stat(path)).size;
    } catch (error) {
      throw new ImageDirError(`Image "${dir}" lacks "${match[2]}": build it again`, {
        cause: error,
      });
    }
    const packed = join(dir, PACKED, `${match[2]}.zst`);
    const packedSha256 = packedHashes.get(`${match[2]}.zst`);
    const hasPacked = packedSha256 !== undefined &&
      await Deno.stat(packed).then((info) => info.isFile, () => false);
    files.push({
      name: match[2]!,
      path,
      sha256: match[1]!,
      size,
      ...(hasPacked ? { packed, packedSha256 } : {}),
    });
  }
  const names = new Set(files.map((f) => f.name));
  if (!names.has(LAUNCHER)) throw new ImageDirError(`Image "${dir}" has no "${LAUNCHER}"`);
  const kind = names.has(ENTRY) && names.has("deno") ? "bundle" : "binary";
  return { kind, hash: imageHash(manifest), manifest, files };
}

/** `name -> sha256` of a manifest's well-formed lines (packed/manifest: ignores the rest). */
function parseManifest(text: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^([0-9a-f]{64}) {2}([A-Za-z0-9._/-]+)$/.exec(line);
    if (match) found.set(match[2]!, match[1]!);
  }
  return found;
}

/** Describes files on this host as an image, hashing each once. */
export async function imageOf(
  kind: SelfImage["kind"],
  files: { name: string; path: string }[],
): Promise<SelfImage> {
  const hashed: ImageFile[] = [];
  for (const file of files) {
    const size = (await Deno.stat(file.path)).size;
    hashed.push({ ...file, size, sha256: await sha256FileHex(file.path) });
  }
  const manifest = manifestText(hashed);
  return { kind, hash: imageHash(manifest), manifest, files: hashed };
}
