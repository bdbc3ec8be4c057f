/**
 * `deno task layers`: checks the structure that docs/architecture.md draws.
 *
 * - Every import in `src/` points down the layer order below, or stays in its
 *   own folder; so there are no folder cycles either.
 * - Roles (folders of `src/services/`) never import each other.
 * - No file in `src/` is over 400 lines, and no function over 80.
 *
 * Prints every breach with its file and line, and exits 1 if there is one.
 * With `--arrows`, prints which folders each folder imports instead.
 * @module
 */
import { join, relative } from "node:path";

/** Folders of `src/`, lowest first; a folder may import only from lower layers. */
export const LAYERS: readonly (readonly string[])[] = [
  ["types", "base"],
  ["config", "crypto", "metrics"],
  ["client", "api"],
  ["image"],
  ["launchers"],
  ["registry", "bootstrap"],
  ["health", "children"],
  ["runtime"],
  ["services", "ui"],
  ["cli"],
];

const MAX_FILE_LINES = 400;
const MAX_FUNCTION_LINES = 80;
const IMPORT =
  /(?:^|\s)(?:import|export)\b[^"'`;]*?\bfrom\s*["'](\.{1,2}\/[^"']+)["']|import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;

/** One breach of the rules. */
export interface Breach {
  file: string;
  line: number;
  rule: string;
}

function layerOf(folder: string): number {
  return LAYERS.findIndex((layer) => layer.includes(folder));
}

/** The folder of `src/` a path lies in (`services/queue` for roles), or "" outside `src/`. */
function placeOf(path: string): { folder: string; role: string } {
  const parts = path.split("/");
  if (parts[0] !== "src" || parts.length < 3) return { folder: "", role: "" };
  const folder = parts[1]!;
  return { folder, role: folder === "services" && parts.length > 3 ? parts[2]! : "" };
}

/** The import breaches of one file at `path` (relative to the checkout) with `text`. */
export function importBreaches(path: string, text: string): Breach[] {
  const breaches: Breach[] = [];
  const from = placeOf(path);
  for (const match of text.matchAll(IMPORT)) {
    const spec = match[1] ?? match[2]!;
    const target = join(path, "..", spec);
    const to = placeOf(target);
    const line = text.slice(0, match.index).split("\n").length;
    if (!to.folder || to.folder === from.folder) {
      if (from.role && to.role && from.role !== to.role) {
        breaches.push({ file: path, line, rule: `role ${from.role} imports role ${to.role}` });
      }
      continue;
    }
    const up = layerOf(from.folder);
    const down = layerOf(to.folder);
    if (up < 0 || down < 0) {
      const unknown = up < 0 ? from.folder : to.folder;
      breaches.push({ file: path, line, rule: `src/${unknown}/ is in no layer of LAYERS` });
    } else if (down >= up) {
      breaches.push({
        file: path,
        line,
        rule: `src/${from.folder}/ (layer ${up}) imports src/${to.folder}/ (layer ${down})`,
      });
    }
  }
  return breaches;
}

/** Functions and methods longer than the limit, found by their braces. */
export function longFunctions(path: string, text: string, limit = MAX_FUNCTION_LINES): Breach[] {
  const lines = text.split("\n");
  const breaches: Breach[] = [];
  const head =
    /^\s*(?:export\s+)?(?:default\s+)?(?:static\s+)?(?:async\s+)?(?:function\*?\s+[\w$]+|(?:get\s+|set\s+)?#?[\w$]+\s*(?:<[^>]*>)?\s*\()/;
  const keyword = /^\s*(?:if|for|while|switch|catch|return|await|new|super|else)\b/;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!head.test(line) || keyword.test(line) || line.trimEnd().endsWith(";")) continue;
    const end = closingLine(lines, i);
    if (end < 0) continue;
    if (end - i + 1 > limit) {
      breaches.push({
        file: path,
        line: i + 1,
        rule: `function of ${end - i + 1} lines (> ${limit})`,
      });
    }
  }
  return breaches;
}

/** The line where the block opened on or after line `start` closes, or -1. */
function closingLine(lines: string[], start: number): number {
  let depth = 0;
  let opened = false;
  for (let i = start; i < lines.length && i < start + 2000; i++) {
    const code = lines[i]!.replace(/\/\/.*$/, "").replace(/(["'`])(?:\\.|(?!\1).)*\1/g, '""');
    for (const ch of code) {
      if (ch === "{") (depth++, opened = true);
      else if (ch === "}") depth--;
    }
    // A signature that ends without a body (an overload, a type) opens nothing.
    if (!opened && i > start && /[;,]\s*$/.test(code)) return -1;
    if (opened && depth <= 0) return i;
  }
  return -1;
}

async function* sources(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* sources(path);
    else if (entry.name.endsWith(".ts")) yield path;
  }
}

/** Checks the tree under `root`; resolves with every breach. */
export async function checkTree(root: string): Promise<Breach[]> {
  const breaches: Breach[] = [];
  for await (const absolute of sources(join(root, "src"))) {
    const path = relative(root, absolute);
    const text = await Deno.readTextFile(absolute);
    breaches.push(...importBreaches(path, text), ...longFunctions(path, text));
    const count = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
    if (count > MAX_FILE_LINES) {
      breaches.push({ file: path, line: count, rule: `${count} lines (> ${MAX_FILE_LINES})` });
    }
  }
  return breaches.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
}

/** The folder-level arrows of the tree under `root`: each folder and the folders it imports. */
export async function arrows(root: string): Promise<Map<string, Set<string>>> {
  const found = new Map<string, Set<string>>();
  for await (const absolute of sources(join(root, "src"))) {
    const path = relative(root, absolute);
    const from = placeOf(path).folder;
    for (const match of (await Deno.readTextFile(absolute)).matchAll(IMPORT)) {
      const to = placeOf(join(path, "..", match[1] ?? match[2]!)).folder;
      if (to && to !== from) found.set(from, (found.get(from) ?? new Set()).add(to));
    }
  }
  return found;
}

if (import.meta.main && Deno.args.includes("--arrows")) {
  const found = await arrows(Deno.cwd());
  for (const folder of LAYERS.flat().toReversed()) {
    const to = [...found.get(folder) ?? []].sort((a, b) =>
      layerOf(b) - layerOf(a) || a.localeCompare(b)
    );
    console.log(
      `- \`${folder}\` -> ${to.length ? to.map((t) => `\`${t}\``).join(", ") : "nothing"}`,
    );
  }
} else if (import.meta.main) {
  const breaches = await checkTree(Deno.cwd());
  for (const b of breaches) console.error(`${b.file}:${b.line}: ${b.rule}`);
  if (breaches.length > 0) {
    console.error(`${breaches.length} breaches of the structure: see docs/architecture.md`);
    Deno.exit(1);
  }
  console.log(`Structure holds: ${LAYERS.flat().length} folders in ${LAYERS.length} layers`);
}
