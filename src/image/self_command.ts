/**
 * What this fabricd is made of, and how it starts another copy of itself. This
 * is the one module that knows the image kinds apart (DESIGN.md "One binary"):
 *
 * - `binary`: a `deno compile` executable, which is the whole image;
 * - `bundle`: `deno` plus one `deno bundle` output, as shipped to other hosts;
 * - `source`: `deno` plus `main.ts` in a checkout; shipped as a bundle made on demand.
 * @module
 */
import { fileURLToPath } from "node:url";

/** The permission flags fabricd runs with, from source and compiled alike. */
export const PERMISSION_FLAGS: readonly string[] = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-run",
  "--allow-sys",
];

/** File name of the bundled program inside an image. */
export const BUNDLE_NAME = "fabricd.js";

/** How this process runs. */
export type ImageKind = "binary" | "bundle" | "source";

/** An executable plus the arguments that come before fabricd's own. */
export interface SelfCommand {
  executable: string;
  prefix: string[];
  kind: ImageKind;
}

/** The kind of image this process runs from. */
export function imageKind(): ImageKind {
  // deno compile serves the main module from a virtual file system under a
  // directory named "deno-compile-<name>".
  if (Deno.mainModule.includes("/deno-compile-")) return "binary";
  return import.meta.url.endsWith(".js") ? "bundle" : "source";
}

/** The command that runs this same fabricd on this host. */
export function selfCommand(): SelfCommand {
  const kind = imageKind();
  const exec = Deno.execPath();
  if (kind === "binary") return { executable: exec, prefix: [], kind };
  return { executable: exec, prefix: ["run", "--quiet", ...PERMISSION_FLAGS, entryScript()], kind };
}

/** The command line that runs an image unpacked in `dir` on another host. */
export function imageCommand(kind: ImageKind, dir: string): string[] {
  if (kind === "binary") return [`${dir}/fabricd`];
  return [`${dir}/deno`, "run", "--quiet", ...PERMISSION_FLAGS, `${dir}/${BUNDLE_NAME}`];
}

/** The script this process runs: the bundle file, or `main.ts` of the checkout. */
export function entryScript(): string {
  // Not Deno.mainModule: under `deno test` that is the test file. In a bundle,
  // import.meta.url is the bundle itself.
  if (import.meta.url.endsWith(".js")) return fileURLToPath(import.meta.url);
  return fileURLToPath(new URL("../../main.ts", import.meta.url));
}
