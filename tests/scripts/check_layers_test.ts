import assert from "node:assert/strict";
import { checkTree, importBreaches, LAYERS, longFunctions } from "../../scripts/check_layers.ts";

Deno.test("importBreaches() refuses an import that points up the layers and names both folders", () => {
  const found = importBreaches("src/health/x.ts", 'import { a } from "../runtime/service.ts";\n');
  assert.equal(found.length, 1);
  assert.match(found[0]!.rule, /src\/health\/ \(layer \d+\) imports src\/runtime\//);
  assert.equal(found[0]!.line, 1);
});

Deno.test("importBreaches() lets imports point down, stay in the folder, or be dynamic and downward", () => {
  const text = [
    'import type { Role } from "../types/mod.ts";',
    'import { b } from "./b.ts";',
    'const m = await import("../crypto/keys.ts");',
  ].join("\n");
  assert.deepEqual(importBreaches("src/runtime/x.ts", text), []);
});

Deno.test("importBreaches() refuses one role importing another, and a dynamic upward import", () => {
  assert.equal(
    importBreaches("src/services/agent/a.ts", 'import { q } from "../queue/queue.ts";').length,
    1,
  );
  assert.equal(importBreaches("src/types/x.ts", 'await import("../cli/up.ts");').length, 1);
});

Deno.test("longFunctions() finds a function over the limit and not one within it", () => {
  const body = (n: number) => Array.from({ length: n }, (_, i) => `  const v${i} = ${i};`);
  const text = [
    "export function long() {",
    ...body(10),
    "}",
    "function short() {",
    "  return 1;",
    "}",
  ]
    .join("\n");
  const found = longFunctions("src/x.ts", text, 8);
  assert.equal(found.length, 1);
  assert.equal(found[0]!.line, 1);
});

Deno.test("LAYERS names every folder of src/ exactly once", async () => {
  const folders: string[] = [];
  for await (const entry of Deno.readDir(new URL("../../src", import.meta.url))) {
    if (entry.isDirectory) folders.push(entry.name);
  }
  assert.deepEqual([...LAYERS.flat()].sort(), folders.sort());
});

Deno.test("the checkout keeps its structure: no import up the layers, no role importing another, no file over 400 lines or function over 80", async () => {
  const root = new URL("../..", import.meta.url).pathname;
  const breaches = await checkTree(root);
  assert.deepEqual(breaches.map((b) => `${b.file}:${b.line}: ${b.rule}`), []);
});
