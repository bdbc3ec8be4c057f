import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

// `import { z } from "zod"` takes zod's `z` namespace object whole, and with it
// every locale zod ships: esbuild cannot leave them out of the bundle (1.3 MB
// of chunks against 0.9 MB, and a few MB more VmRSS per service that runs from
// an image; docs/performance.md "idle-memory"). `import * as z from "zod"` lets it.
Deno.test("every zod import in src/ is a namespace import, so the image's bundle leaves out zod's locales", async () => {
  const named: string[] = [];
  const visit = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await visit(path);
      else if (entry.name.endsWith(".ts")) {
        for (const [i, line] of (await Deno.readTextFile(path)).split("\n").entries()) {
          if (/^import\s+(type\s+)?\{[^}]*\}\s+from\s+"zod"/.test(line)) {
            named.push(`${path}:${i + 1}`);
          }
        }
      }
    }
  };
  await visit(fileURLToPath(new URL("../../src/", import.meta.url)));
  assert.deepEqual(named, [], 'write `import * as z from "zod"` instead');
});
