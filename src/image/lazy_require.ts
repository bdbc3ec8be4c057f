/**
 * Makes the `require` that `deno bundle` injects into a bundle, and the
 * default imports of Node built-ins that bundled npm packages write, load
 * Deno's Node compatibility layer only when first used.
 *
 * `deno bundle` gives esbuild's shared runtime chunk (the helpers that every
 * other chunk imports, ESM ones too) a top-level `createRequire` from
 * `node:module`, and esbuild makes every entry chunk import that chunk. So
 * even `fabricd --version` paid for the Node layer (~25 ms of CPU, more than
 * a whole empty `deno run`). After this rewrite a command whose code needs no
 * CommonJS package and no `node:` module starts without it.
 * @module
 */
import { join } from "../base/paths.ts";

/**
 * Deno's injected line (as `deno bundle` 2.9 writes it, minified or not): the
 * import of `createRequire` and the variable that holds the bundle's require.
 */
const INJECTED =
  /import\s*\{\s*createRequire as __deno_internal_createRequire\s*\}\s*from\s*"node:module";\s*var (\w+)\s*=\s*__deno_internal_createRequire\(import\.meta\.url\);/;

/**
 * The same `require`, made on its first use. A Proxy so that `require.resolve`
 * and the other properties keep working; `process.getBuiltinModule` is the
 * synchronous way to reach `node:module` without a static import.
 */
function lazyRequire(name: string): string {
  const make = '(r??=process.getBuiltinModule("node:module").createRequire(u))';
  return `var ${name}=((u,r)=>new Proxy(function(){},{apply:(_,t,a)=>${make}(...a),` +
    `get:(_,k)=>${make}[k]}))(import.meta.url);`;
}

/**
 * Rewrites the bundle's chunks in `dir` so that none imports `node:module`
 * for `deno bundle`'s injected `require`. Returns the names of the chunks
 * rewritten (none when the bundle has no CommonJS, or when a future `deno
 * bundle` writes the injection differently: the bundle then stays as it was,
 * correct, only slower to start).
 */
export function deferInjectedRequire(dir: string): Promise<string[]> {
  return rewriteChunks(dir, (text) => {
    const match = INJECTED.exec(text);
    return match ? text.replace(INJECTED, lazyRequire(match[1]!)) : text;
  });
}

/**
 * A default import of a Node built-in in a chunk (`import X from"node:util"`):
 * what npm packages bundled for Node write. @logtape/logtape's `#util`
 * resolves to its Node build in the bundle (its `node` condition comes before
 * `deno`), which imports `node:util` for `inspect`: in the chunk every
 * service loads.
 */
const DEFAULT_NODE_IMPORT = /import\s*([\w$]+)\s*from\s*"(node:[a-z_/]+)";?/g;

/**
 * Rewrites the bundle's chunks in `dir` so that a default import of a Node
 * built-in (see `DEFAULT_NODE_IMPORT`) becomes an object that loads the
 * module on the first use of one of its members (or of itself, for a module
 * that is a function), through `process.getBuiltinModule`. Returns the names of the chunks rewritten.
 */
export function deferNodeDefaultImports(dir: string): Promise<string[]> {
  return rewriteChunks(dir, (text) =>
    text.replace(
      DEFAULT_NODE_IMPORT,
      (_, name: string, module: string) => {
        const load = `process.getBuiltinModule(${JSON.stringify(module)})`;
        return `var ${name}=new Proxy(function(){},{get:(_,k)=>${load}[k],` +
          `apply:(_,t,a)=>${load}(...a)});`;
      },
    ));
}

/**
 * Applies `rewrite` to every `.js` file in `dir` and writes back the ones it
 * changed. Returns their names, sorted.
 */
export async function rewriteChunks(
  dir: string,
  rewrite: (text: string) => string,
): Promise<string[]> {
  const rewritten: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !entry.name.endsWith(".js")) continue;
    const path = join(dir, entry.name);
    const text = await Deno.readTextFile(path);
    const changed = rewrite(text);
    if (changed === text) continue;
    await Deno.writeTextFile(path, changed);
    rewritten.push(entry.name);
  }
  return rewritten.sort();
}
