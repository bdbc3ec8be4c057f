/**
 * POSIX path names, as Node's `path.posix` gives them, and `file:` URLs to
 * paths, as Node's `url.fileURLToPath` does: written here so that a module
 * needing a path does not load Deno's Node layer (3-9 MB of a service's
 * resident memory for its first `node:` import). POSIX only: fabricd runs on
 * Linux and macOS.
 *
 * @module
 */

/**
 * The segments of `path` with `.` and empty ones dropped and each `..` taking
 * away the segment before it. A `..` with nothing before it stays when
 * `aboveRoot` (a relative path) and goes otherwise (nothing is above `/`).
 */
function normalSegments(path: string, aboveRoot: boolean): string[] {
  const kept: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment !== "..") kept.push(segment);
    else if (kept.length > 0 && kept.at(-1) !== "..") kept.pop();
    else if (aboveRoot) kept.push("..");
  }
  return kept;
}

/** `path` without `.`, `..` and repeated slashes; a trailing slash stays, as in Node. */
function normalize(path: string): string {
  if (path === "") return ".";
  const absolute = isAbsolute(path);
  const trailing = path.endsWith("/");
  const body = normalSegments(path, !absolute).join("/");
  if (body === "") return absolute ? "/" : trailing ? "./" : ".";
  return (absolute ? "/" : "") + body + (trailing ? "/" : "");
}

/** True when `path` starts at the root (`/`). */
export function isAbsolute(path: string): boolean {
  return path.startsWith("/");
}

/**
 * The `paths` joined with `/` and normalized: `.` and `..` segments and
 * repeated slashes resolved, a trailing slash kept. Empty parts are skipped;
 * `"."` when nothing is left. An absolute part after the first does not
 * restart the path (unlike {@linkcode resolve}): `join("/a", "/b")` is `/a/b`.
 */
export function join(...paths: string[]): string {
  const joined = paths.filter((path) => path !== "").join("/");
  return joined === "" ? "." : normalize(joined);
}

/**
 * The absolute, normalized path that `paths` name, read right to left until
 * one is absolute, then against `Deno.cwd()` if none is. No trailing slash
 * except for the root itself.
 *
 * @throws {Deno.errors.NotCapable} When none of `paths` is absolute and the
 *   process may not read its working directory.
 */
export function resolve(...paths: string[]): string {
  let resolved = "";
  for (let i = paths.length - 1; i >= 0 && !isAbsolute(resolved); i--) {
    if (paths[i] !== "") resolved = resolved === "" ? paths[i]! : `${paths[i]}/${resolved}`;
  }
  if (!isAbsolute(resolved)) resolved = `${Deno.cwd()}/${resolved}`;
  return `/${normalSegments(resolved, false).join("/")}`;
}

/**
 * The relative path from `from` to `to`, both resolved first (against
 * `Deno.cwd()` when relative): `""` when they are the same place, `..` for
 * each segment of `from` that `to` does not share.
 *
 * @throws {Deno.errors.NotCapable} As {@linkcode resolve} does.
 */
export function relative(from: string, to: string): string {
  const fromSegments = normalSegments(resolve(from), false);
  const toSegments = normalSegments(resolve(to), false);
  let shared = 0;
  while (
    shared < fromSegments.length && shared < toSegments.length &&
    fromSegments[shared] === toSegments[shared]
  ) shared++;
  const up = Array<string>(fromSegments.length - shared).fill("..");
  return [...up, ...toSegments.slice(shared)].join("/");
}

/**
 * The directory part of `path`: everything before its last segment, trailing
 * slashes ignored. `"."` when `path` has no directory part, `"/"` at the root.
 * Like Node, a path of one segment under `//` keeps both slashes, which POSIX
 * lets a system read specially.
 */
export function dirname(path: string): string {
  if (path === "") return ".";
  let end = path.length;
  while (end > 1 && path[end - 1] === "/") end--;
  const slash = path.lastIndexOf("/", end - 1);
  if (slash === -1) return ".";
  if (slash === 0) return "/";
  if (slash === 1 && path[0] === "/") return "//";
  return path.slice(0, slash);
}

/** The last segment of `path`, trailing slashes ignored; `""` for `/` and for `""`. */
export function basename(path: string): string {
  let end = path.length;
  while (end > 0 && path[end - 1] === "/") end--;
  return path.slice(path.lastIndexOf("/", end - 1) + 1, end);
}

/**
 * The path a `file:` URL names, percent-decoded: what `Deno.mainModule` and
 * `import.meta.url` become to read the file they point at.
 *
 * @throws {TypeError} When `url` is not a URL, not a `file:` URL, names a
 *   host other than the local one, encodes a `/` as `%2F`, or holds a percent
 *   escape that is not UTF-8.
 */
export function fromFileUrl(url: string | URL): string {
  const text = String(url);
  const parsed = URL.parse(url);
  if (parsed === null) throw new TypeError(`Cannot read "${text}" as a file path: not a URL`);
  if (parsed.protocol !== "file:") {
    throw new TypeError(`Cannot read "${text}" as a file path: give a file: URL`);
  }
  if (parsed.hostname !== "") {
    throw new TypeError(`Cannot read "${text}" as a file path: it names host "${parsed.hostname}"`);
  }
  if (/%2f/i.test(parsed.pathname)) {
    throw new TypeError(`Cannot read "${text}" as a file path: it encodes "/" as %2F`);
  }
  try {
    return decodeURIComponent(parsed.pathname);
  } catch (cause) {
    throw new TypeError(`Cannot read "${text}" as a file path: bad percent escape`, { cause });
  }
}
