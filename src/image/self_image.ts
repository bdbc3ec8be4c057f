/**
 * This fabricd's image as files with SHA-256 hashes, content-addressed by one
 * image hash; from source, the bundle is made once with `deno bundle`.
 * @module
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { basename, dirname, join } from "node:path";
import { MANIFEST } from "./ship.ts";
import { BUNDLE_NAME, entryScript, type ImageKind, imageKind } from "./self_command.ts";

/** One file of an image. */
export interface ImageFile {
  /** Name inside the image directory: `fabricd`, `deno` or `fabricd.js`. */
  name: string;
  /** Where it is on this host. */
  path: string;
  sha256: string;
  size: number;
}

/** A content-addressed image. */
export interface SelfImage {
  kind: Exclude<ImageKind, "source">;
  /** SHA-256 over the file list: names the cache directory on every host. */
  hash: string;
  files: ImageFile[];
}

/** Options of {@linkcode selfImage}. */
export interface SelfImageOptions {
  /** Local cache for a bundle made from source. Default `~/.cache/fabricd`. */
  cacheDir: string;
}

let memo: Promise<SelfImage> | null = null;

/**
 * The image of this process (computed once per process).
 * @throws {Error} when `deno bundle` fails from source.
 */
export function selfImage(options: SelfImageOptions): Promise<SelfImage> {
  memo ??= buildImage(options).catch((error) => {
    memo = null;
    throw error;
  });
  return memo;
}

async function buildImage(options: SelfImageOptions): Promise<SelfImage> {
  const kind = imageKind();
  const main = kind === "binary" ? Deno.execPath() : entryScript();
  const cached = kind === "source" ? null : await cachedImage(kind, dirname(main));
  if (cached) return cached;
  if (kind === "binary") {
    return await imageOf("binary", [{ name: "fabricd", path: Deno.execPath() }]);
  }
  const bundle = kind === "bundle" ? entryScript() : await bundleFromSource(options.cacheDir);
  return await imageOf("bundle", [
    { name: "deno", path: Deno.execPath() },
    { name: BUNDLE_NAME, path: bundle },
  ]);
}

/**
 * The image this process runs from when it was shipped here: its directory is
 * named by the image hash and holds the manifest written when the copy was
 * verified, so the 100 MB need not be hashed again on every start.
 */
async function cachedImage(kind: SelfImage["kind"], dir: string): Promise<SelfImage | null> {
  const hash = basename(dir);
  if (!/^[0-9a-f]{64}$/.test(hash)) return null;
  let text: string;
  try {
    await Deno.stat(join(dir, ".complete"));
    text = await Deno.readTextFile(join(dir, MANIFEST));
  } catch {
    return null;
  }
  const files: ImageFile[] = [];
  for (const line of text.split("\n").filter(Boolean)) {
    const [name, sha256, size] = line.split(" ");
    if (!name || !sha256 || !size) return null;
    files.push({ name, path: join(dir, name), sha256, size: Number(size) });
  }
  return manifestHash(files) === hash ? { kind, hash, files } : null;
}

function manifestHash(files: ImageFile[]): string {
  const manifest = files.map((f) => `${f.name} ${f.sha256}\n`).join("");
  return createHash("sha256").update(`fabricd-image-v1\n${manifest}`).digest("hex");
}

/** Builds an image description from files on this host. */
export async function imageOf(
  kind: SelfImage["kind"],
  files: { name: string; path: string }[],
): Promise<SelfImage> {
  const hashed: ImageFile[] = [];
  for (const file of files) {
    const size = (await Deno.stat(file.path)).size;
    hashed.push({ ...file, size, sha256: await sha256File(file.path) });
  }
  return { kind, hash: manifestHash(hashed), files: hashed };
}

/** SHA-256 of a file, hex. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Uint8Array);
  return hash.digest("hex");
}

async function bundleFromSource(cacheDir: string): Promise<string> {
  const dir = join(cacheDir, "bundles");
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${crypto.randomUUID()}.js`);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "deno", "--output", tmp, entryScript()],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`deno bundle failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  const final = join(dir, `fabricd-${(await sha256File(tmp)).slice(0, 16)}.js`);
  await Deno.rename(tmp, final);
  return final;
}
