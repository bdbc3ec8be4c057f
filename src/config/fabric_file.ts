/**
 * The fabric file: what an operator or an application needs to reach a fabric
 * again (DESIGN.md "Words"): the key file, the fingerprint, the registry
 * endpoints, the root spawner and the application's sessions.
 * @module
 */
import { dirname, isAbsolute, join, resolve } from "../base/paths.ts";
import { isMap, isSeq, LineCounter, parseDocument, stringify } from "yaml";
import * as z from "zod";
import { homeDir } from "./home.ts";
import { readSmallFile, SmallFileError } from "../base/small_file.ts";

export { homeDir };

const endpointSchema = z.object({
  id: z.string().min(1),
  url: z.url({ protocol: /^https?$/ }),
});

const fabricFileSchema = z.object({
  version: z.literal(1),
  key: z.string().min(1),
  fingerprint: z.string().regex(/^sha256:[0-9a-f]{64}$/, "must look like sha256:<64 hex digits>"),
  registries: z.array(endpointSchema).default([]),
  spawner: endpointSchema.optional(),
  sessions: z.array(z.string().min(1)).default([]),
  dir: z.string().min(1).optional(),
});

/** The fabric file's content, validated. */
export type FabricFile = z.infer<typeof fabricFileSchema>;

/** A fabric file that cannot be read or does not hold what it must. */
export class FabricFileError extends Error {
  /** Path of the file. */
  readonly path: string;
  /** 1-based line of the problem, 0 when it is not about one place. */
  readonly line: number;
  /** 1-based column of the problem, 0 when it is not about one place. */
  readonly column: number;
  /** Whether the file was missing rather than malformed. */
  readonly missing: boolean;

  /** Builds the error; `where` locates the problem in the file. */
  constructor(
    message: string,
    where: { path: string; line?: number; column?: number; missing?: boolean },
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "FabricFileError";
    this.path = where.path;
    this.line = where.line ?? 0;
    this.column = where.column ?? 0;
    this.missing = where.missing ?? false;
  }
}

/** Options of {@linkcode resolveFabricPath}. */
export interface ResolveFabricPathOptions {
  /** Environment to read `FABRIC_FILE` and `HOME` from. Default `Deno.env`. */
  env?: { get(name: string): string | undefined };
}

/**
 * What an empty `--fabric` gets told. Commands that check their flags
 * themselves refuse it as a usage error with this message.
 */
export const EMPTY_FABRIC_FLAG =
  "Empty --fabric: give the fabric file's path, or leave --fabric out to use FABRIC_FILE, then ~/.fabric/fabric.yaml";

/**
 * Finds the fabric file: `--fabric FILE`, then `FABRIC_FILE`, then
 * `~/.fabric/fabric.yaml`. An empty `flag` (`--fabric=`, `--fabric "$UNSET"`)
 * is refused rather than taken for "not given": acting on the default fabric
 * instead of the one meant could stop the wrong fabric.
 * @throws {FabricFileError} (`missing`) when `flag` is empty.
 */
export function resolveFabricPath(
  flag: string | undefined,
  options: ResolveFabricPathOptions = {},
): string {
  const env = options.env ?? Deno.env;
  if (flag === "") throw new FabricFileError(EMPTY_FABRIC_FLAG, { path: "", missing: true });
  if (flag !== undefined) return resolve(flag);
  const fromEnv = env.get("FABRIC_FILE");
  if (fromEnv) return resolve(fromEnv);
  return join(homeDir(env), ".fabric", "fabric.yaml");
}

/** The most a fabric file may hold; it holds a few hundred bytes, a few KiB with many sessions. */
const MAX_FABRIC_FILE_BYTES = 1024 * 1024;

/**
 * Reads and validates a fabric file.
 *
 * @throws {FabricFileError} when the file is missing (`missing`), is a
 * directory, a FIFO or a device, is over 1 MiB, is not YAML or lacks a field;
 * `line` and `column` point at the problem.
 */
export async function loadFabricFile(path: string): Promise<FabricFile> {
  let text: string;
  try {
    text = await readFabricText(path);
  } catch (cause) {
    if (cause instanceof FabricFileError) throw cause;
    if (cause instanceof Deno.errors.NotFound) {
      throw new FabricFileError(
        `No fabric file at "${path}": run "fabricd init" or "fabricd up" first, or pass --fabric FILE`,
        { path, missing: true },
        { cause },
      );
    }
    throw new FabricFileError(`Cannot read fabric file "${path}": ${String(cause)}`, { path }, {
      cause,
    });
  }
  return parseFabricFile(text, path);
}

/**
 * The text of fabric file `path`, read only when it is a regular file of at
 * most {@linkcode MAX_FABRIC_FILE_BYTES} (base/small_file.ts).
 * @throws {FabricFileError} for a directory, another non-regular file or a larger file;
 * `Deno.errors` as `stat` and `open` report them.
 */
async function readFabricText(path: string): Promise<string> {
  try {
    return await readSmallFile(path, MAX_FABRIC_FILE_BYTES);
  } catch (error) {
    if (!(error instanceof SmallFileError)) throw error;
    const fix = {
      "directory": `: give the fabric file itself, e.g. --fabric "${join(path, "fabric.yaml")}"`,
      "not-regular": ": give the fabric file itself with --fabric FILE",
      "too-large": ", far more than a fabric file holds: give the right file with --fabric FILE, " +
        "or restore it",
    }[error.kind];
    throw new FabricFileError(`Fabric file "${path}" ${error.problem}${fix}`, { path });
  }
}

/**
 * Parses fabric-file text; `path` only names the file in errors.
 *
 * @throws {FabricFileError} on YAML syntax errors or invalid fields, with line
 * and column, and on aliases that would expand past the YAML library's limit.
 */
export function parseFabricFile(text: string, path: string): FabricFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) {
    const at = lines.linePos(syntax.pos[0]);
    throw new FabricFileError(
      `${path}:${at.line}:${at.col}: ${
        firstLine(syntax.message)
      }: fix the YAML at that line (the file names the registries of a fabric that may be running; a new fabric would cut it off)`,
      { path, line: at.line, column: at.col },
    );
  }
  let data: unknown;
  try {
    // Throws on an alias bomb: aliases of aliases that would expand without end.
    data = doc.toJS();
  } catch (cause) {
    throw new FabricFileError(
      `${path}: cannot expand its YAML (${
        firstLine(cause instanceof Error ? cause.message : String(cause))
      }): a fabric file needs no anchors or aliases (&name, *name): write the values out, or restore the file`,
      { path },
      { cause },
    );
  }
  const parsed = fabricFileSchema.safeParse(data ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const keys = issue.path.map((p) => (typeof p === "symbol" ? String(p) : p));
  const at = locate(doc, keys, lines);
  const field = keys.join(".") || "(top level)";
  throw new FabricFileError(
    `${path}:${at.line}:${at.col}: field "${field}": ${issue.message}`,
    { path, line: at.line, column: at.col },
  );
}

/**
 * Writes a fabric file atomically (temporary file, then rename), mode 0600.
 */
export async function saveFabricFile(path: string, fabric: FabricFile): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  const header = "# fabricd fabric file: keep it; it is how you reconnect to this fabric\n";
  await Deno.writeTextFile(tmp, header + stringify(fabric), { mode: 0o600 });
  await Deno.rename(tmp, path);
}

/** The key file's absolute path; a relative `key` is relative to the fabric file. */
export function keyPathOf(fabricPath: string, fabric: FabricFile): string {
  return isAbsolute(fabric.key) ? fabric.key : join(dirname(fabricPath), fabric.key);
}

function locate(
  doc: ReturnType<typeof parseDocument>,
  keys: (string | number)[],
  lines: LineCounter,
): { line: number; col: number } {
  for (let n = keys.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(keys.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | undefined)?.range;
    if (range && (n > 0 || isMap(node) || isSeq(node))) {
      return lines.linePos(range[0]);
    }
  }
  return { line: 1, col: 1 };
}

function firstLine(message: string): string {
  return message.split("\n")[0] ?? message;
}
