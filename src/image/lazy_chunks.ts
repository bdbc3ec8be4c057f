/**
 * Keeps Deno from loading every chunk of the bundle before `main.js` runs.
 *
 * Before it runs a module, Deno builds its module graph, and that graph
 * follows every dynamic `import("./x.js")` whose specifier is a plain string:
 * each such chunk is read and parsed at start-up, run or not. In the bundle,
 * the command table and the service start are such imports, so every start,
 * even `fabricd --version`, read all chunks (about 1 MB, the role and zod
 * chunks included). Written as `import(String("./x.js"))` the import is the
 * same at run time, but no longer in the graph: a command loads only its own
 * chunks, when it needs them (`fabricd --version`: 1.25 -> 1.04 times an empty
 * `deno run` in CPU, docs/performance.md).
 * @module
 */
import { rewriteChunks } from "./lazy_require.ts";

/** esbuild's dynamic import of a sibling chunk, minified or not. */
const DYNAMIC_IMPORT = /\bimport\(\s*"(\.\/[A-Za-z0-9_.-]+\.js)"\s*\)/g;

/**
 * Rewrites the dynamic imports of sibling chunks in the bundle in `dir`.
 * Returns the names of the files rewritten.
 */
export function deferDynamicChunks(dir: string): Promise<string[]> {
  return rewriteChunks(
    dir,
    (text) => text.replace(DYNAMIC_IMPORT, (_, name) => `import(String("${name}"))`),
  );
}
