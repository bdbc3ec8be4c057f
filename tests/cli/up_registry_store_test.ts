/**
 * `fabricd up` checks the registry's store file before it starts the registry
 * on it: a zero-length `registry.db` of a fabric that ran before was opened as
 * a new, empty store (every record lost, running services orphaned), and a
 * foreign SQLite file was given the registry's tables before it was refused.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { loadFabricFile, saveFabricFile } from "../../src/config/fabric_file.ts";
import { initFabric } from "../../src/cli/init.ts";
import { runFabricd, withTempDir } from "../e2e/_fabric.ts";

/** A fabric in `dir`; `ranBefore`: its file names a registry, as after an earlier `up`. */
async function fabricIn(dir: string, ranBefore: boolean): Promise<string> {
  const fabric = join(dir, "fabric.yaml");
  await initFabric(fabric);
  if (ranBefore) {
    const file = await loadFabricFile(fabric);
    await saveFabricFile(fabric, {
      ...file,
      registries: [{ id: "reg-0000aaaa", url: "http://127.0.0.1:1" }],
      dir,
    });
  }
  return fabric;
}

/** The store files of `dir` with their bytes. */
function storeFiles(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of Deno.readDirSync(dir)) {
    if (!entry.name.startsWith("registry")) continue;
    files.set(entry.name, Deno.readFileSync(join(dir, entry.name)).join(","));
  }
  return files;
}

function foreignDatabase(path: string): void {
  const db = new DatabaseSync(path);
  db.exec("CREATE TABLE services (id TEXT PRIMARY KEY, name TEXT)");
  db.close();
}

async function up(dir: string, fabric: string): Promise<{ code: number; stderr: string }> {
  const before = storeFiles(dir);
  const out = await runFabricd(["up", "--dir", dir, "--fabric", fabric]);
  assert.deepEqual(storeFiles(dir), before, `the store was left as it was: ${out.stderr}`);
  assert.equal(out.stdout, "", "nothing was started");
  return out;
}

Deno.test("fabricd up refuses with 79 a fabric that ran before whose registry store is empty, and leaves it as it was", async () => {
  await withTempDir(async (dir) => {
    const fabric = await fabricIn(dir, true);
    Deno.writeFileSync(join(dir, "registry.db"), new Uint8Array());
    const out = await up(dir, fabric);
    assert.equal(out.code, 79, out.stderr);
    assert.match(
      out.stderr,
      /Registry store ".*registry\.db" is empty \(0 bytes\): the records of this fabric cannot be picked up again\. Restore the file/,
    );
  });
});

Deno.test("fabricd up refuses a foreign SQLite file as the registry store, 79 when it ran before and 65 when new, byte for byte unchanged", async () => {
  for (const [ranBefore, code] of [[true, 79], [false, 65]] as const) {
    await withTempDir(async (dir) => {
      const fabric = await fabricIn(dir, ranBefore);
      foreignDatabase(join(dir, "registry.db"));
      const out = await up(dir, fabric);
      assert.equal(out.code, code, out.stderr);
      assert.match(
        out.stderr,
        /Registry store ".*registry\.db" is not a fabricd registry store \(table "services" has no column "role"\)/,
      );
      assert.doesNotMatch(out.stderr, /^\s+at /m, "no stack trace");
    });
  }
});
