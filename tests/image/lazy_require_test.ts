import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { deferInjectedRequire, deferNodeDefaultImports } from "../../src/image/lazy_require.ts";
import { withTempDir } from "../e2e/_fabric.ts";

/** What `deno bundle` 2.9 writes at the top of its shared runtime chunk. */
const RUNTIME_CHUNK =
  "var g=Object.create;import{createRequire as __deno_internal_createRequire} " +
  'from "node:module";var m=__deno_internal_createRequire(import.meta.url);' +
  "var n=(a)=>a;export{m as a,n as b};\n";

Deno.test("deferInjectedRequire() drops the node:module import and keeps require working", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "chunk-A.js"), RUNTIME_CHUNK);
    await Deno.writeTextFile(join(dir, "main.js"), 'import"./chunk-A.js";export const x=1;\n');
    assert.deepEqual(await deferInjectedRequire(dir), ["chunk-A.js"]);
    const text = await Deno.readTextFile(join(dir, "chunk-A.js"));
    assert.doesNotMatch(text, /from\s*"node:module"/);
    assert.match(text, /^var g=Object\.create;var m=/);
    assert.match(text, /var n=\(a\)=>a;export\{m as a,n as b\};\n$/);
    // The entry is left alone.
    assert.equal(
      await Deno.readTextFile(join(dir, "main.js")),
      'import"./chunk-A.js";export const x=1;\n',
    );
    const chunk = await import(pathToFileURL(join(dir, "chunk-A.js")).href);
    assert.equal(chunk.a("node:path").posix.join("a", "b"), "a/b");
    assert.equal(typeof chunk.a.resolve, "function");
  });
});

Deno.test("deferInjectedRequire() leaves a bundle without the injected require as it was", async () => {
  await withTempDir(async (dir) => {
    const text = 'import{createRequire}from"node:module";export const r=createRequire;\n';
    await Deno.writeTextFile(join(dir, "chunk-B.js"), text);
    assert.deepEqual(await deferInjectedRequire(dir), []);
    assert.equal(await Deno.readTextFile(join(dir, "chunk-B.js")), text);
  });
});

Deno.test("deferNodeDefaultImports() defers a bundled package's default import of a Node built-in", async () => {
  await withTempDir(async (dir) => {
    // As @logtape/logtape's Node build is bundled: `inspect` from node:util.
    const chunk = 'var a=1;import lr from"node:util";function ne(t){return lr.inspect(t)}' +
      'import ok from "node:assert";export{ne as i,ok as o};\n';
    await Deno.writeTextFile(join(dir, "chunk-C.js"), chunk);
    const plain = 'import{join as j}from"node:path";export{j};\n';
    await Deno.writeTextFile(join(dir, "chunk-D.js"), plain);
    assert.deepEqual(await deferNodeDefaultImports(dir), ["chunk-C.js"]);
    const text = await Deno.readTextFile(join(dir, "chunk-C.js"));
    assert.doesNotMatch(text, /from\s*"node:/);
    assert.equal(await Deno.readTextFile(join(dir, "chunk-D.js")), plain, "named imports stay");
    const module = await import(pathToFileURL(join(dir, "chunk-C.js")).href);
    assert.equal(module.i({ a: 1 }), "{ a: 1 }");
    module.o(true);
    assert.throws(() => module.o(false));
  });
});
