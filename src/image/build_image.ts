/**
 * Builds the fabricd image from a checkout: `deno bundle` (code split, so a
 * command loads only its own chunks) beside this deno and the launcher, in the
 * image directory layout of `image_dir.ts`. A build is kept per source hash in
 * the image cache, so a checkout is bundled at most once; `deno bundle` is the
 * only step that may need the network (esbuild, the first time), and it is
 * never run at spawn time when an image exists.
 * @module
 */
import { join, relative } from "../base/paths.ts";
import { homeDir } from "../config/home.ts";
import {
  COMPLETE,
  ENTRY,
  imageOf,
  LAUNCHER,
  MANIFEST,
  manifestText,
  PACKED,
  readImageDir,
  type SelfImage,
} from "./image_dir.ts";
import { sha256FileHex } from "../crypto/hash.ts";
import { deferDynamicChunks } from "./lazy_chunks.ts";
import { deferInjectedRequire, deferNodeDefaultImports } from "./lazy_require.ts";
import { entryScript, launcherScript } from "./self_command.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";

/** The image could not be built here: no esbuild in Deno's cache and no network, most often. */
export class ImageUnavailableError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ImageUnavailableError";
  }
}

/** Options of {@linkcode buildImage}. */
export interface BuildImageOptions {
  /** The image cache. Default {@linkcode imageCacheDir}. */
  cacheDir?: string;
  /** Longest wait for `deno bundle`. Default 120 s. */
  bundleTimeoutMs?: number;
}

/** `~/.cache/fabricd`: the image cache, the same path on every host. */
export function imageCacheDir(): string {
  return join(homeDir(), ".cache", "fabricd");
}

/** What an offline host must do instead, for every message that says the image is missing. */
export const OFFLINE_HINT =
  'on a machine with network access run "npx -y deno@2.9.6 task image --out DIR" in a checkout ' +
  '(or "fabricd image build --out DIR"), copy DIR here, and run "DIR/fabricd up" ' +
  '(docs/ssh.md, "Air-gapped sites")';

/**
 * The image of the checkout this module belongs to, from the cache when this
 * source was built before, else bundled now and kept.
 * @throws {ImageUnavailableError} when `deno bundle` fails or times out.
 */
export async function buildImage(options: BuildImageOptions = {}): Promise<SelfImage> {
  const cacheDir = options.cacheDir ?? imageCacheDir();
  const source = await sourceHash();
  const byHash = join(cacheDir, "sources", source);
  const known = await Deno.readTextFile(byHash).catch(() => "");
  if (/^[0-9a-f]{64}$/.test(known.trim())) {
    const cached = await readImageDir(join(cacheDir, known.trim())).catch(() => null);
    if (cached) return cached;
  }
  await Deno.mkdir(join(cacheDir, "sources"), { recursive: true, mode: 0o700 });
  const tmp = join(cacheDir, `.build-${crypto.randomUUID().slice(0, 8)}`);
  try {
    await bundleInto(join(tmp, "js"), options.bundleTimeoutMs ?? 120_000);
    await linkOrCopy(Deno.execPath(), join(tmp, "deno"));
    await Deno.writeTextFile(join(tmp, LAUNCHER), launcherScript(), { mode: 0o755 });
    await Deno.chmod(join(tmp, LAUNCHER), 0o755);
    const image = await imageOf("bundle", await filesUnder(tmp));
    await packLargeFiles(tmp, image.files.map((f) => f.name));
    await Deno.writeTextFile(join(tmp, MANIFEST), image.manifest);
    await Deno.writeTextFile(join(tmp, COMPLETE), "");
    const final = join(cacheDir, image.hash);
    // Another process may have built the same source meanwhile: keep theirs.
    await Deno.rename(tmp, final).catch(() => Deno.remove(tmp, { recursive: true }));
    await Deno.writeTextFile(byHash, `${image.hash}\n`);
    return await readImageDir(final);
  } finally {
    // After the rename there is no temporary directory left to remove.
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/**
 * Copies the image to `out` (made if missing; files already there with the
 * same names are replaced) and returns it as read back from `out`.
 * @throws {Error} when `out` cannot be written.
 */
export async function exportImage(image: SelfImage, out: string): Promise<SelfImage> {
  await Deno.mkdir(out, { recursive: true });
  // A first export has no marker yet.
  await Deno.remove(join(out, COMPLETE)).catch(() => {});
  const copies = image.files.flatMap((file) => [
    { from: file.path, to: join(out, file.name) },
    ...(file.packed ? [{ from: file.packed, to: join(out, PACKED, `${file.name}.zst`) }] : []),
  ]);
  for (const { from, to } of copies) {
    await Deno.mkdir(join(to, ".."), { recursive: true });
    // A first export has nothing to replace.
    await Deno.remove(to).catch(() => {});
    await linkOrCopy(from, to);
  }
  const packed = image.files.filter((f) => f.packed && f.packedSha256)
    .map((f) => ({ name: `${f.name}.zst`, sha256: f.packedSha256! }));
  if (packed.length > 0) {
    await Deno.writeTextFile(join(out, PACKED, MANIFEST), manifestText(packed));
  }
  await Deno.writeTextFile(join(out, MANIFEST), image.manifest);
  await Deno.writeTextFile(join(out, COMPLETE), "");
  return await readImageDir(out);
}

/**
 * SHA-256 over this checkout's program: `main.ts`, `deno.json`, `deno.lock`,
 * every `.ts` under `src/`, and the Deno version that bundles them.
 */
export async function sourceHash(): Promise<string> {
  const root = join(entryScript(), "..");
  const files = ["main.ts", "deno.json", "deno.lock"];
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(join(root, dir))) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts")) files.push(path);
    }
  };
  await walk("src");
  files.sort();
  const parts: Uint8Array[] = [new TextEncoder().encode(`deno ${Deno.version.deno}\n`)];
  for (const file of files) {
    const bytes = await Deno.readFile(join(root, file)).catch(() => new Uint8Array());
    parts.push(new TextEncoder().encode(`\n${file} ${bytes.length}\n`), bytes);
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  const digest = await crypto.subtle.digest("SHA-256", all);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function bundleInto(outdir: string, timeoutMs: number): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "deno",
      "--code-splitting",
      "--minify",
      "--outdir",
      outdir,
      entryScript(),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { DENO_NO_UPDATE_CHECK: "1" },
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already done.
    }
  }, timeoutMs);
  const out = await child.output().finally(() => clearTimeout(timer));
  if (!out.success) {
    const said = new TextDecoder().decode(out.stderr).trim().split("\n").slice(0, 6).join("\n");
    const why = out.signal ? `no answer within ${timeoutMs / 1000} s` : said || `exit ${out.code}`;
    throw new ImageUnavailableError(
      `Cannot build the fabricd image here: "deno bundle" failed (${why}). ` +
        `It needs esbuild, which Deno fetches from npm once; ${OFFLINE_HINT}`,
    );
  }
  try {
    await Deno.stat(join(outdir, "main.js"));
  } catch (error) {
    throw new ImageUnavailableError(`"deno bundle" wrote no ${ENTRY}`, { cause: error });
  }
  await deferInjectedRequire(outdir);
  await deferNodeDefaultImports(outdir);
  await deferDynamicChunks(outdir);
}

/** Files at least this large get a compressed form, made once here and shipped as it is. */
export const PACK_BYTES = 4 << 20;

/**
 * Compresses the large files of the image in `dir` into `packed/NAME.zst`
 * (zstd -9: a third of deno's size, and it decompresses at several hundred
 * MB/s). Without zstd on this host the image simply has no packed forms.
 */
async function packLargeFiles(dir: string, names: string[]): Promise<void> {
  const packedHashes: { name: string; sha256: string }[] = [];
  for (const name of names) {
    const path = join(dir, name);
    if ((await Deno.stat(path)).size < PACK_BYTES) continue;
    const out = join(dir, PACKED, `${name}.zst`);
    await Deno.mkdir(join(out, ".."), { recursive: true });
    const packed = await new Deno.Command("zstd", {
      args: ["-9", "-T0", "-q", "--check", "-f", "-o", out, path],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output().catch(() => null);
    // zstd may have failed before writing anything: the file is optional.
    if (!packed?.success) await Deno.remove(out).catch(() => {});
    else packedHashes.push({ name: `${name}.zst`, sha256: await sha256FileHex(out) });
  }
  if (packedHashes.length > 0) {
    await Deno.writeTextFile(join(dir, PACKED, MANIFEST), manifestText(packedHashes));
  }
}

async function filesUnder(dir: string): Promise<{ name: string; path: string }[]> {
  const found: { name: string; path: string }[] = [];
  const walk = async (at: string): Promise<void> => {
    for await (const entry of Deno.readDir(at)) {
      const path = join(at, entry.name);
      if (entry.isDirectory) {
        if (at !== dir || entry.name !== PACKED) await walk(path);
      } else if (entry.name !== MANIFEST && entry.name !== COMPLETE) {
        found.push({ name: relative(dir, path).split("\\").join("/"), path });
      }
    }
  };
  await walk(dir);
  return found;
}

/** A hard link where both paths share a file system (no 100 MB copy), else a copy. */
async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await Deno.link(from, to);
  } catch {
    await Deno.copyFile(from, to);
  }
}
