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
import { dirname, fromFileUrl } from "../base/paths.ts";
import { ENTRY, LAUNCHER } from "./image_dir.ts";

/**
 * The permission flags fabricd runs with, from source and compiled alike: all.
 * Deno 2.9 lets a process read `/proc` (its own CPU time and open-file limit,
 * the command line of a half-started child to end) only with `--allow-all`,
 * and a process allowed to run programs and write files is not held by
 * narrower flags anyway.
 */
export const PERMISSION_FLAGS: readonly string[] = ["--allow-all"];

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

/**
 * V8 flags of a service process (`fabricd --role ...`), not of commands. Each
 * is measured in docs/performance.md "Flags": `--max-semi-space-size=1` (MB)
 * keeps V8's young generation from growing to its 16 MB default under request
 * load, which was most of a service's growth after 10,000 requests, at no
 * CPU cost per request that the benchmark could see. `FABRIC_V8_FLAGS`
 * (comma-separated; empty for V8's own defaults) replaces them.
 */
export const SERVICE_V8_FLAGS: readonly string[] = ["--max-semi-space-size=1"];

/** The environment variable that replaces {@linkcode SERVICE_V8_FLAGS}. */
export const V8_FLAGS_ENV = "FABRIC_V8_FLAGS";

/** The `deno run` argument that gives a service its V8 flags, if any. */
function serviceV8Args(): string[] {
  const flags = Deno.env.get(V8_FLAGS_ENV) ?? SERVICE_V8_FLAGS.join(",");
  return flags ? [`--v8-flags=${flags}`] : [];
}

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
  return dirname(dirname(fromFileUrl(Deno.mainModule)));
}

/**
 * The command that runs this same fabricd on this host as a service (its
 * arguments start with `--role`): with {@linkcode SERVICE_V8_FLAGS}, which the
 * bundle's launcher adds itself.
 */
export function selfCommand(): SelfCommand {
  const kind = imageKind();
  const exec = Deno.execPath();
  if (kind === "binary") return { executable: exec, prefix: [], kind };
  if (kind === "bundle") return { executable: `${imageDirOfSelf()}/${LAUNCHER}`, prefix: [], kind };
  return {
    executable: exec,
    prefix: ["run", "--quiet", ...serviceV8Args(), ...PERMISSION_FLAGS, entryScript()],
    kind,
  };
}

/** The command line that runs the image unpacked in `dir` (on any host). */
export function imageCommand(dir: string): string[] {
  return [`${dir}/${LAUNCHER}`];
}

/**
 * The `fabricd` launcher of a bundle image: a POSIX shell script that runs the
 * bundle with the image's own deno, its permission flags, nothing fetched, and
 * {@linkcode SERVICE_V8_FLAGS} when its first argument is `--role` (a service).
 * Its directory comes from `$0`, so call it by a path, not through a symbolic
 * link. Given `dir` (already quoted for `sh`), the script runs the image in
 * `dir` from anywhere: the installed command (`deno task install`) is such a
 * script, one `sh` start fewer than a wrapper that execs the launcher.
 */
export function launcherScript(dir?: string): string {
  return [
    "#!/bin/sh",
    "# fabricd image launcher: runs this image's bundle with its own deno, offline.",
    dir === undefined ? "case $0 in */*) d=${0%/*} ;; *) d=. ;; esac" : `d=${dir}`,
    `case $1 in --role|--role=*) v=\${${V8_FLAGS_ENV}-${
      SERVICE_V8_FLAGS.join(",")
    }} ;; *) v= ;; esac`,
    "DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1 exec " +
    `"$d/deno" run ${
      [...OFFLINE_RUN_FLAGS, '${v:+"--v8-flags=$v"}', ...PERMISSION_FLAGS].join(" ")
    } ` +
    `"$d/${ENTRY}" "$@"`,
    "",
  ].join("\n");
}

/** `main.ts` of the checkout this process runs from (source only). */
export function entryScript(): string {
  // Not Deno.mainModule: under `deno test` that is the test file.
  return fromFileUrl(new URL("../../main.ts", import.meta.url));
}
