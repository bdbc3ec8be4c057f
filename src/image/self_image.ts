/**
 * This fabricd's image, content-addressed: the image directory it runs from,
 * the compiled binary, or (from source) the image built once per source hash.
 * @module
 */
import { basename, dirname } from "../base/paths.ts";
import { buildImage, imageCacheDir } from "./build_image.ts";
import { imageOf, LAUNCHER, readImageDir, type SelfImage } from "./image_dir.ts";
import { imageDirOfSelf, imageKind } from "./self_command.ts";

export type { ImageFile, SelfImage } from "./image_dir.ts";

/** Options of {@linkcode selfImage}. */
export interface SelfImageOptions {
  /** The image cache that a build from source goes to. Default `~/.cache/fabricd`. */
  cacheDir?: string;
}

/**
 * The image of this process. From an image or a binary it is read, not built;
 * from source it is built at most once per source hash (see `build_image.ts`).
 * @throws {ImageUnavailableError} when it must be built and cannot be.
 */
export async function selfImage(options: SelfImageOptions = {}): Promise<SelfImage> {
  const kind = imageKind();
  if (kind === "bundle") return await readImageDir(imageDirOfSelf()!);
  if (kind === "binary") {
    // Shipped binaries sit in a hash-named cache directory with their manifest.
    const dir = dirname(Deno.execPath());
    if (/^[0-9a-f]{64}$/.test(basename(dir))) {
      const cached = await readImageDir(dir).catch(() => null);
      if (cached?.hash === basename(dir)) return cached;
    }
    return await imageOf("binary", [{ name: LAUNCHER, path: Deno.execPath() }]);
  }
  return await buildImage({ cacheDir: options.cacheDir ?? imageCacheDir() });
}
