/**
 * What this fabricd is made of, and how it starts another copy of itself. This
 * is the one module that knows the image kinds apart (DESIGN.md "One binary"):
 *
 * - `binary`: a `deno compile` executable, which is the whole image;
 * - `bundle`: an image directory (`image_dir.ts`): deno, the bundle's chunks
 *   and the `fabricd` launcher that runs them offline;
 * - `source`: `deno` plus `main.ts` in a checkout; shipped as an image built
 *   once per source hash (`build_image.ts`).
 * @module
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { ENTRY, LAUNCHER } from "./image_dir.ts";

/** The permission flags fabricd runs with, from source and compiled alike. */
export const PERMISSION_FLAGS: readonly string[] = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-run",
  "--allow-sys",
];

/**
 * How an image's deno runs its bundle: no configuration file or lock file is
 * looked for (an image may sit inside a checkout), and nothing may be fetched,
 * so a host without network fails at once instead of waiting on DNS.
 */
export const OFFLINE_RUN_FLAGS: readonly string[] = [
  "--quiet",
  "--no-config",
  "--no-lock",
  "--no-remote",
  "--cached-only",
];

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
  return import.meta.url.endsWith(".js") && Deno.mainModule.endsWith(`/${ENTRY}`)
    ? "bundle"
    : "source";
}

/**
 * The image directory this process runs from (`bundle`: the directory above
 * `js/`), or null from source or a compiled binary.
 */
export function imageDirOfSelf(): string | null {
  if (imageKind() !== "bundle") return null;
  return dirname(dirname(fileURLToPath(Deno.mainModule)));
}

/** The command that runs this same fabricd on this host. */
export function selfCommand(): SelfCommand {
  const kind = imageKind();
  const exec = Deno.execPath();
  if (kind === "binary") return { executable: exec, prefix: [], kind };
  if (kind === "bundle") return { executable: `${imageDirOfSelf()}/${LAUNCHER}`, prefix: [], kind };
  return { executable: exec, prefix: ["run", "--quiet", ...PERMISSION_FLAGS, entryScript()], kind };
}

/** The command line that runs the image unpacked in `dir` (on any host). */
export function imageCommand(dir: string): string[] {
  return [`${dir}/${LAUNCHER}`];
}

/**
 * The `fabricd` launcher of a bundle image: a POSIX shell script that runs the
 * bundle with the image's own deno, its permission flags and nothing fetched.
 * Its directory comes from `$0`, so call it by a path (the installed command
 * is a wrapper that does), not through a symbolic link.
 */
export function launcherScript(): string {
  return [
    "#!/bin/sh",
    "# fabricd image launcher: runs this image's bundle with its own deno, offline.",
    "case $0 in */*) d=${0%/*} ;; *) d=. ;; esac",
    "DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1 exec " +
    `"$d/deno" run ${[...OFFLINE_RUN_FLAGS, ...PERMISSION_FLAGS].join(" ")} "$d/${ENTRY}" "$@"`,
    "",
  ].join("\n");
}

/** `main.ts` of the checkout this process runs from (source only). */
export function entryScript(): string {
  // Not Deno.mainModule: under `deno test` that is the test file.
  return fileURLToPath(new URL("../../main.ts", import.meta.url));
}
