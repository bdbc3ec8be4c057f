import assert from "node:assert/strict";
import { fromFileUrl } from "../../src/base/paths.ts";

// A service that imports a `node:` module pays for Deno's Node layer at start:
// 4-7 MB of resident memory idle and about 25 ms of CPU (docs/performance.md
// "idle-memory"). So what a service loads before it serves (main.ts, the
// service command, its role's module, statically) imports none, except
// `node:sqlite` for the roles that keep a SQLite store (about 1 MB: it does not
// load the rest of the layer). Code a service reaches only on demand (an image
// build) may load Node modules with `await import()`.
const ALLOWED: Record<string, readonly string[]> = {
  registry: ["node:sqlite"],
  queue: ["node:sqlite"],
};
const ROLES = ["registry", "spawner", "bridge", "queue", "pubsub", "agent", "pilot_manager"];

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier?: string }; isDynamic?: boolean }[];
}

/** `node:` modules imported statically from `entry`, each with the first file that does. */
async function nodeImports(entry: string): Promise<Map<string, string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: fromFileUrl(new URL("../../", import.meta.url)),
    stderr: "inherit",
  }).output();
  assert.ok(out.success, `deno info ${entry} failed`);
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: InfoModule[];
  };
  const modules = new Map(info.modules.map((m) => [m.specifier, m]));
  const found = new Map<string, string>();
  const seen = new Set<string>();
  const stack = [...info.roots];
  while (stack.length > 0) {
    const specifier = stack.pop()!;
    if (seen.has(specifier)) continue;
    seen.add(specifier);
    for (const dependency of modules.get(specifier)?.dependencies ?? []) {
      const next = dependency.code?.specifier;
      if (next === undefined || dependency.isDynamic) continue;
      if (next.startsWith("node:")) {
        if (!found.has(next)) found.set(next, specifier.replace(/^.*\/src\//, "src/"));
      } else if (!next.startsWith("npm:")) stack.push(next);
    }
  }
  return found;
}

Deno.test("a service loads no node: module before it serves, so it starts without Deno's Node layer", async () => {
  const shared = new Map([
    ...await nodeImports("main.ts"),
    ...await nodeImports("src/cli/role.ts"),
  ]);
  assert.deepEqual(
    [...shared].map(([m, by]) => `${m} (from ${by})`),
    [],
    "main.ts and the service command",
  );
  for (const role of ROLES) {
    const found = await nodeImports(`src/services/${role}/mod.ts`);
    const extra = [...found].filter(([m]) => !(ALLOWED[role] ?? []).includes(m));
    assert.deepEqual(extra.map(([m, by]) => `${m} (from ${by})`), [], role);
  }
});

// Deno 2.9's global setTimeout is Node's: its first call loads the Node layer
// (src/base/timers.ts). Every module of src/ takes its timers from there, and
// none calls setImmediate, which is Node's too.
Deno.test("no module of src/ calls the global timers, which load the Node layer", async () => {
  const src = fromFileUrl(new URL("../../src/", import.meta.url));
  // Browser code of the UI's page, shipped as text, is not run by Deno.
  const exempt = new Set(["base/timers.ts", "ui/_page.ts"]);
  const offenders: string[] = [];
  const visit = async (dir: string, rel: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const name = rel + entry.name;
      if (entry.isDirectory) await visit(`${dir}/${entry.name}`, `${name}/`);
      else if (name.endsWith(".ts") && !exempt.has(name)) {
        const text = await Deno.readTextFile(`${dir}/${entry.name}`);
        const code = text.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
        const calls = /(?<![\w.$])(setTimeout|setInterval|clearTimeout|clearInterval)\s*\(/.test(
          code,
        );
        const immediate = /(?<![\w.$])(setImmediate|clearImmediate)\s*\(/.test(code);
        if (immediate || (calls && !/from "[./]*base\/timers\.ts"/.test(text))) {
          offenders.push(name);
        }
      }
    }
  };
  await visit(src.replace(/\/$/, ""), "");
  assert.deepEqual(offenders, [], 'import them from "src/base/timers.ts"');
});
