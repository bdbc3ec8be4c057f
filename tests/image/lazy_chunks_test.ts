import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { deferDynamicChunks } from "../../src/image/lazy_chunks.ts";
import { withTempDir } from "../e2e/_fabric.ts";

Deno.test("deferDynamicChunks() hides chunk imports from the module graph and keeps them working", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "status-AB12.js"), "export const answer=42;\n");
    const main =
      'import"./chunk-A.js";var c={status:async()=>(await import("./status-AB12.js")).answer,' +
      'npm:()=>import("npm:left-alone")};export{c};\n';
    await Deno.writeTextFile(join(dir, "chunk-A.js"), "export const x=1;\n");
    await Deno.writeTextFile(join(dir, "main.js"), main);
    assert.deepEqual(await deferDynamicChunks(dir), ["main.js"]);
    const text = await Deno.readTextFile(join(dir, "main.js"));
    assert.match(text, /import\(String\("\.\/status-AB12\.js"\)\)/);
    // Static imports and anything but a sibling chunk are left alone.
    assert.match(text, /^import"\.\/chunk-A\.js";/);
    assert.match(text, /import\("npm:left-alone"\)/);
    const module = await import(pathToFileURL(join(dir, "main.js")).href);
    assert.equal(await module.c.status(), 42);
    // Once rewritten there is nothing left to rewrite.
    assert.deepEqual(await deferDynamicChunks(dir), []);
  });
});
