/**
 * `fabricd status` on the fabric's own host, through the registry's local
 * read socket (`registry.sock` in the fabric's state directory, see
 * `registry/local_socket.ts`): no keys, no YAML parser, no signing library
 * loaded, so the command costs little more than a bare Deno start.
 *
 * It is only a shortcut. It answers for `status` with `--json`, `--all` and
 * `--fabric FILE` (no ID, no filter, no `--prune`) when the fabric file names its state directory and
 * fingerprint in the form `fabricd up` writes, the socket and that directory
 * belong to this user and no one else may write there, and the registry on the
 * socket names the fabric file's first registry and fingerprint. Anything else
 * (another fabric, a registry elsewhere, a filter, an old registry without the
 * socket, any error) returns null, and the signed path of `status.ts` runs.
 * @module
 */
import type { ServiceRecord } from "../types/mod.ts";
import { readSmallFile } from "../base/small_file.ts";

/** The bound of `loadFabricFile` (config/fabric_file.ts, not imported: it brings the YAML parser). */
const MAX_FABRIC_FILE_BYTES = 1024 * 1024;
import { renderTree, shownRecords, withReachability, writeServicesJson } from "./status_tree.ts";

/** The answer of the socket: who serves it, and the records. */
interface LocalAnswer {
  registry: string;
  fingerprint: string;
  services: ServiceRecord[];
}

/** Longest answer read from the socket: beyond it, the signed path streams. */
const MAX_ANSWER_BYTES = 64 << 20;
/** How long the socket may take to answer, ms. */
const TIMEOUT_MS = 3000;

/**
 * Prints the status from the local read socket and returns the exit code, or
 * returns null (printing nothing) when it does not apply; see the module doc.
 */
export async function localStatus(args: readonly string[]): Promise<number | null> {
  const flags = new Set<string>();
  let file: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--json" || arg === "--all") flags.add(arg);
    else if (arg === "--fabric" && args[i + 1] !== undefined) file = args[++i];
    else if (arg.startsWith("--fabric=")) file = arg.slice("--fabric=".length);
    else return null;
  }
  try {
    const fabric = await fabricFacts(file);
    if (!fabric) return null;
    const answer = await readSocket(`${fabric.dir}/registry.sock`);
    if (
      !answer || answer.registry !== fabric.registry || answer.fingerprint !== fabric.fingerprint ||
      !Array.isArray(answer.services)
    ) {
      return null;
    }
    if (flags.has("--json")) {
      await writeServicesJson(withReachability(answer.services));
    } else {
      const shown = shownRecords(answer.services, flags.has("--all"));
      console.log(renderTree(shown, Date.now(), answer.services));
    }
    return 0;
  } catch {
    return null;
  }
}

/** The fabric file's state directory, fingerprint and first registry, read without a YAML parser. */
async function fabricFacts(
  given: string | undefined,
): Promise<{ dir: string; fingerprint: string; registry: string } | null> {
  const home = Deno.env.get("HOME");
  const file = given ?? Deno.env.get("FABRIC_FILE") ??
    (home ? `${home}/.fabric/fabric.yaml` : "");
  if (!file) return null;
  // Bounded, and only a regular file: a FIFO there must not block the command.
  const text = await readSmallFile(file, MAX_FABRIC_FILE_BYTES);
  const dir = /^dir: (\/[^\s'"#]+)$/m.exec(text)?.[1];
  const fingerprint = /^fingerprint: (sha256:[0-9a-f]{64})$/m.exec(text)?.[1];
  const registry = /^registries:\n {2}- id: ([a-z][a-z0-9-]{1,62})$/m.exec(text)?.[1];
  if (!dir || !fingerprint || !registry) return null;
  const uid = Deno.uid();
  const [socket, folder] = await Promise.all([
    Deno.lstat(`${dir}/registry.sock`),
    Deno.stat(dir),
  ]);
  // The file system is the trust here: only this user may have made the socket.
  const private_ = socket.isSocket && socket.uid === uid && folder.uid === uid &&
    ((folder.mode ?? 0o777) & 0o022) === 0;
  return private_ ? { dir, fingerprint, registry } : null;
}

/** `GET /v1/registry/services` on the socket, or null unless it answers 200 in time. */
async function readSocket(path: string): Promise<LocalAnswer | null> {
  const conn = await Deno.connect({ transport: "unix", path });
  // Not setTimeout: its first use costs a fresh Deno 5-9 ms, AbortSignal.timeout well under 1.
  const deadline = AbortSignal.timeout(TIMEOUT_MS);
  const close = () => closeQuietly(conn);
  deadline.addEventListener("abort", close, { once: true });
  try {
    await conn.write(
      new TextEncoder().encode(
        "GET /v1/registry/services HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n\r\n",
      ),
    );
    let bytes = new Uint8Array(1 << 16);
    let size = 0;
    let body = -1;
    let length = -1;
    // Read until the body's Content-Length is in: the server need not close first.
    while (body < 0 || size < body + length) {
      if (size === bytes.length) {
        if (size * 2 > MAX_ANSWER_BYTES) return null;
        const bigger = new Uint8Array(size * 2);
        bigger.set(bytes);
        bytes = bigger;
      }
      const n = await conn.read(bytes.subarray(size));
      if (n === null) break;
      size += n;
      if (body < 0) {
        const head = headOf(bytes.subarray(0, size));
        if (head) [body, length] = head;
      }
    }
    if (body < 0 || length < 0 || size < body + length) return null;
    const status = new TextDecoder().decode(bytes.subarray(0, 13));
    if (status !== "HTTP/1.1 200 ") return null;
    return JSON.parse(new TextDecoder().decode(bytes.subarray(body, body + length))) as LocalAnswer;
  } finally {
    deadline.removeEventListener("abort", close);
    closeQuietly(conn);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Closed already (by the deadline).
  }
}

/**
 * Where the body starts and its Content-Length, once the head is complete;
 * [at, -1] when the answer has no Content-Length (not this socket's), null
 * while the head is still incomplete.
 */
function headOf(bytes: Uint8Array): [number, number] | null {
  for (let i = 3; i < bytes.length; i++) {
    if (bytes[i] === 10 && bytes[i - 1] === 13 && bytes[i - 2] === 10 && bytes[i - 3] === 13) {
      const head = new TextDecoder().decode(bytes.subarray(0, i)).toLowerCase();
      const length = /\r\ncontent-length: *(\d{1,10})\r/.exec(head + "\r")?.[1];
      return [i + 1, length === undefined ? -1 : Number(length)];
    }
  }
  return null;
}
