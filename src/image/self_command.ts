/**
 * How this program starts another copy of itself. This is the one module that
 * knows the difference between the two image kinds (DESIGN.md "One binary"):
 * a `deno compile` binary is its own executable; from source it is `deno run`
 * with the same permission flags over `main.ts` (or the bundle).
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

/** An executable plus the arguments that come before fabricd's own. */
export interface SelfCommand {
  executable: string;
  prefix: string[];
  /** "binary" for a compiled fabricd, "source" for deno + script. */
  kind: "binary" | "source";
}

/** The command that runs this same fabricd. */
export function selfCommand(): SelfCommand {
  const exec = Deno.execPath();
  if (isCompiled()) return { executable: exec, prefix: [], kind: "binary" };
  return {
    executable: exec,
    prefix: ["run", "--quiet", ...PERMISSION_FLAGS, entryScript()],
    kind: "source",
  };
}

function isCompiled(): boolean {
  // deno compile serves the main module from a virtual file system under a
  // directory named "deno-compile-<name>".
  return Deno.mainModule.includes("/deno-compile-");
}

function entryScript(): string {
  // Not Deno.mainModule: under `deno test` that is the test file.
  return fileURLToPath(new URL("../../main.ts", import.meta.url));
}
