/**
 * Ships an image to a host over an existing SSH connection, into
 * `~/.cache/fabricd/<hash>/`, verified by SHA-256 there, renamed into place
 * atomically, and skipped when the host already has that hash (for instance
 * because it shares `$HOME` with a host that got it before).
 *
 * Files, not images: every host keeps each file once, by its SHA-256, in
 * `~/.cache/fabricd/files/`, and an image directory is hard links to them. A
 * host that holds this `deno` gets only the files it lacks (an upgrade: the
 * bundle's chunks, well under a megabyte).
 *
 * One `exec` asks what the host has; when it holds none of the files (a cold
 * copy), the same command goes on to receive them (`feedOnAnswer`), else a
 * second one carries what it lacks. Bulk data
 * never passes through this process: a local `cat` feeds the SSH channel with
 * the small files as one tar stream (gzip'ed when they travel alone: an
 * upgrade), then each large file, as its compressed form made once at build
 * time (`packed/NAME.zst`) when the host has zstd. The host reads the tar by
 * its length (`head -c`), keeps the compressed form as it arrives, then
 * decompresses it in the background while it hashes it from the page cache
 * (faster than a pipeline on few cores: docs/ssh.md); the SHA-256 of the
 * compressed form (listed in `packed/manifest`) fixes the content, and zstd
 * checks its own checksum of the content. A bridge there passes the same
 * compressed bytes on down the chain. Without zstd (or a packed form) a large
 * file goes raw, hashed once written. The same script then compares every
 * hash with what this side expects and installs the image, or removes the
 * copy; a decompression that fails counts as a wrong hash, and a copy that
 * cannot be renamed into place (another process may have installed the same
 * image meanwhile: then it is simply redundant) as a failure of its own.
 * @module
 */
import type { SshConnection } from "./ssh_connection.ts";
import { type FedResult, feed, feedOnAnswer } from "./ssh_feed.ts";
import {
  installLines,
  linkArchive,
  NOT_INSTALLED,
  OWN_CHANNEL_BYTES,
  planStream,
  probeScript,
  receiveLines,
  REMOTE_CACHE,
  type Stream,
  WRONG_HASH,
} from "./_ship_scripts.ts";
import type { ImageFile, SelfImage } from "../image/image_dir.ts";
import { imageCommand } from "../image/self_command.ts";

export { REMOTE_CACHE };

/** How long the host may take to say what it has (a cut link must not hang a spawn). */
const PROBE_TIMEOUT_MS = 15_000;

/** How long the throwaway warm process after a copy may take on the host. */
const WARM_UP_TIMEOUT_MS = 30_000;

/** An image that could not be put on a host. */
export class ImageShipError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "ImageShipError";
  }
}

/** What a shipment did. */
export interface ShipResult {
  /** False when the host already had the image. */
  copied: boolean;
  /** Bytes of the image's files. */
  bytes: number;
  /** Bytes of the files the host lacked (what had to travel, before compression). */
  missingBytes: number;
  /** Bytes sent over the connection. */
  sent: number;
  /** "zstd" when a large file went in its packed form, "none" otherwise. */
  compression: string;
  ms: number;
}

/** Options of {@linkcode shipImage}. */
export interface ShipOptions {
  /** Compare every arrived file with this hash instead (tests of refusal only). */
  expectHash?: string;
  /**
   * Told of the copy: `bytes` of the `total` the host lacked have arrived
   * (0 when it starts, then as each large file or the small files' stream
   * lands). Not called when the host already has the image. Default: nobody.
   */
  onCopy?: (bytes: number, total: number) => void;
}

interface Arrived {
  name: string;
  sha256: string;
  sent: number;
  compressed: boolean;
}

/**
 * Starts what a cold copy of `image` needs here (the tar of its small files),
 * so that it is ready by the time a connection is: once per image in this
 * process. Optional; {@linkcode shipImage} waits for it otherwise.
 */
export function prepareShip(image: SelfImage): void {
  coldTarOf(image)?.catch(() => {}); // thrown where it is used
}

/**
 * Runs one throwaway warm process of image `hash` on the host to its end (its
 * input is empty: it loads the code and exits). The first process on a host
 * to load a version makes Deno parse every module for its cache (`DENO_DIR`)
 * and keeps the memory of that parse for its whole life (docs/performance.md
 * "idle-memory"); run right after a copy, this one pays it instead of the
 * first service there.
 * @returns whether it ended cleanly within 30 s; a failure only leaves that
 * cost to the first service.
 */
export async function warmImage(ssh: SshConnection, hash: string): Promise<boolean> {
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new RangeError(`Invalid image hash "${hash}"`);
  const command = imageCommand(`$c/${hash}`).map((word) => `"${word}"`).join(" ");
  const script = `c=${REMOTE_CACHE}; ${command} --role bridge --warm ` +
    `--dir "$c" </dev/null >/dev/null 2>&1`;
  try {
    return (await ssh.exec(script, undefined, { timeoutMs: WARM_UP_TIMEOUT_MS })).code === 0;
  } catch {
    return false;
  }
}

/**
 * Makes sure `image` is in the host's cache and returns what was done.
 * @throws {ImageShipError} when the cache directory is not writable, a copy
 * fails, a file's hash does not match on arrival or a compressed one does not
 * decompress, or the checked copy cannot be renamed into place (nothing of
 * the copy is kept then).
 * @throws {SshError} when the host does not answer within 15 s.
 */
export async function shipImage(
  image: SelfImage,
  ssh: SshConnection,
  options: ShipOptions = {},
): Promise<ShipResult> {
  const started = performance.now();
  const host = ssh.target.host;
  const bytes = image.files.reduce((sum, f) => sum + f.size, 0);
  const result = (copied: Omit<ShipResult, "bytes" | "ms">): ShipResult => ({
    ...copied,
    bytes,
    ms: performance.now() - started,
  });
  // A forged expectation (tests) takes the long way: every file is sent.
  const cold = options.expectHash === undefined ? await coldCopy(image) : null;
  const out = await feedOnAnswer(
    ssh,
    probeScript(image, cold?.script ?? null),
    cold?.answers ?? {},
    PROBE_TIMEOUT_MS,
  );
  const said = out.stdout;
  const first = said.slice(0, said.indexOf("\n") + 1).trim();
  if (first === "HAVE") {
    return result({ copied: false, missingBytes: 0, sent: 0, compression: "none" });
  }
  if (first.startsWith("NOWRITE")) {
    throw new ImageShipError(
      `Image cache on ${host} is not writable (${first.slice(8)}): ${
        said.slice(first.length + 1).trim() || "permission denied"
      }; fix its permissions or free the disk`,
    );
  }
  if (cold && (first === "COLD ZSTD" || first === "COLD RAW")) {
    const stream = first === "COLD ZSTD" ? cold.zstd : cold.raw;
    options.onCopy?.(0, cold.total);
    await landed(out, stream, { ssh, tmp: cold.tmp, hash: image.hash });
    options.onCopy?.(cold.total, cold.total);
    return result({
      copied: true,
      missingBytes: cold.total,
      sent: (cold.tar?.size ?? 0) + stream.sentBig,
      compression: stream.packed ? "zstd" : "none",
    });
  }
  if (first !== "OK" || out.code !== 0) {
    throw new ImageShipError(
      `Cannot prepare the image cache on ${host}: ${out.stderr.trim() || `exit ${out.code}`}`,
    );
  }
  const held = new Set(
    said.split("\n").filter((l) => l.startsWith("FILE ")).map((l) => l.slice(5).trim()),
  );
  const missing = image.files.filter((f) => options.expectHash || !held.has(f.sha256));
  const total = missing.reduce((sum, f) => sum + f.size, 0);
  const stream = await planStream(missing, {
    hasher: said.includes("OPENSSL") ? "openssl dgst -sha256 -r" : "sha256sum",
    zstd: said.includes("ZSTD"),
    expectHash: options.expectHash,
  });
  options.onCopy?.(0, total);
  const tar = stream.small.length > 0 ? await packSmall(stream.small, stream.gzip) : null;
  const tmp = tmpName();
  const present = image.files.filter((f) => !options.expectHash && held.has(f.sha256));
  const links = present.length > 0 ? await writeTemp(linkArchive(present, tmp)) : null;
  try {
    const copied = await feed(
      ssh,
      ["cat", ...(links ? [links.path] : []), ...(tar ? [tar.path] : []), ...stream.sources],
      [
        `set -e; c=${REMOTE_CACHE}; t="$c/${tmp}"; mkdir -p "$t"; cd "$t"`,
        ...receiveLines(stream, tar?.size ?? 0, links),
        ...installLines(image, missing),
      ].join("\n"),
    );
    await landed(copied, stream, { ssh, tmp, hash: image.hash });
  } finally {
    for (const made of [tar, links]) if (made) await Deno.remove(made.path).catch(() => {});
  }
  options.onCopy?.(total, total);
  return result({
    copied: true,
    missingBytes: total,
    sent: (links?.size ?? 0) + (tar?.size ?? 0) + stream.sentBig,
    compression: stream.packed ? "zstd" : "none",
  });
}

/** `bytes` in a new temporary file here. */
async function writeTemp(bytes: Uint8Array): Promise<{ path: string; size: number }> {
  const path = await Deno.makeTempFile({ prefix: "fabricd-ship-", suffix: ".tar" });
  await Deno.writeFile(path, bytes);
  return { path, size: bytes.length };
}

function tmpName(): string {
  return `.tmp-${crypto.randomUUID().slice(0, 8)}`;
}

/** Where a copy went: the connection, the copy's temporary directory and the image's hash. */
interface Copy {
  ssh: SshConnection;
  tmp: string;
  hash: string;
}

/**
 * Checks how a copy ended; on failure removes what it left on the host (best
 * effort) and throws. Every status but 0 fails the copy: the script's own
 * ({@linkcode WRONG_HASH}, {@linkcode NOT_INSTALLED}, told apart by what it
 * printed) and that of a command it ran, or of ssh.
 */
async function landed(out: FedResult, stream: Stream, copy: Copy): Promise<void> {
  if (out.code === 0 && out.fed) return;
  const host = copy.ssh.target.host;
  await copy.ssh.exec(`rm -rf ${REMOTE_CACHE}/${copy.tmp}`).catch(() => {});
  if (out.fed && out.code === WRONG_HASH) {
    const unpacked = [...out.stdout.matchAll(/^UNPACK (.+)$/gm)].map((m) => m[1]);
    if (unpacked.length > 0) {
      throw new ImageShipError(
        `Image copied to ${host} is corrupt or incomplete (${unpacked.join(", ")} does not ` +
          `decompress: ${out.stderr.trim() || "zstd failed"}): it was removed and will not run; ` +
          "retry, and check the disk, the connection and the host's zstd",
      );
    }
    if (/^GOT /m.test(out.stdout)) {
      const wrong = stream.expected.filter((want) => !out.stdout.includes(`GOT ${want}\n`));
      throw new ImageShipError(
        `Image copied to ${host} does not match its SHA-256 (${
          wrong.map((line) => line.slice(65)).join(", ")
        }): it was removed and will not run; retry, and check the disk and the connection`,
      );
    }
  }
  const mark = out.stdout.search(/^NOINSTALL /m);
  if (out.fed && out.code === NOT_INSTALLED && mark >= 0) {
    const at = `${host}:~/.cache/fabricd/${copy.hash}`;
    const why = out.stdout.slice(mark + "NOINSTALL ".length).trim();
    throw new ImageShipError(
      why === "STALE"
        ? `Cannot install the image in ${at}: a directory of that name is there but is not a ` +
          "complete image (no .complete); remove it there and retry"
        : `Cannot install the image in ${at}: ${why || "mv failed"}; check ~/.cache/fabricd ` +
          "there (its permissions, or a file of that name in the way) and retry",
    );
  }
  // stderr holds both ends: a local file that could not be read, or the host's complaint.
  throw new ImageShipError(`Copy to ${host} failed: ${out.stderr.trim() || `exit ${out.code}`}`);
}

/** A cold copy folded into the probe: the script after `COLD`, and what feeds it. */
interface ColdCopy {
  script: string;
  answers: Record<string, readonly string[]>;
  zstd: Stream;
  raw: Stream;
  tar: { path: string; size: number } | null;
  tmp: string;
  total: number;
}

/**
 * The cold copy of `image`, when it has a large file to send (else the
 * probe stands alone). The host picks the form of the large files: their
 * compressed form when it has zstd, else raw; `$H` is its hasher.
 */
async function coldCopy(image: SelfImage): Promise<ColdCopy | null> {
  if (!image.files.some((f) => f.size >= OWN_CHANNEL_BYTES)) return null;
  const tar = await coldTarOf(image);
  const plan = { hasher: "$H", expectHash: undefined };
  const zstd = await planStream(image.files, { ...plan, zstd: true });
  const raw = await planStream(image.files, { ...plan, zstd: false });
  const tmp = tmpName();
  const receive = (stream: Stream): string => receiveLines(stream, tar?.size ?? 0).join("\n");
  const script = [
    `set -e; t="$c/${tmp}"; mkdir -p "$t"; cd "$t"`,
    `if [ "$Z" = ZSTD ]; then`,
    receive(zstd),
    "else",
    receive(raw),
    "fi",
    ...installLines(image, image.files),
  ].join("\n");
  const feeder = (stream: Stream) => ["cat", ...(tar ? [tar.path] : []), ...stream.sources];
  return {
    script,
    answers: { "COLD ZSTD": feeder(zstd), "COLD RAW": feeder(raw) },
    zstd,
    raw,
    tar,
    tmp,
    total: image.files.reduce((sum, f) => sum + f.size, 0),
  };
}

/** Per image hash: the tar of all its small files (a cold copy sends them all, uncompressed beside a large file), made once and removed when this process ends. */
const coldTars = new Map<string, Promise<{ path: string; size: number }>>();
const coldTarPaths = new Set<string>();

function coldTarOf(image: SelfImage): Promise<{ path: string; size: number }> | null {
  const small = image.files.filter((f) => f.size < OWN_CHANNEL_BYTES);
  if (small.length === 0) return null;
  let tar = coldTars.get(image.hash);
  if (!tar) {
    if (coldTars.size === 0) globalThis.addEventListener("unload", removeColdTars);
    tar = packSmall(small, false);
    tar.then(
      (made) => coldTarPaths.add(made.path),
      // Thrown where the tar is used; the next copy tries again.
      () => coldTars.delete(image.hash),
    );
    coldTars.set(image.hash, tar);
  }
  return tar;
}

function removeColdTars(): void {
  for (const path of coldTarPaths) {
    try {
      Deno.removeSync(path);
    } catch {
      // Gone already: a temporary file.
    }
  }
}

/**
 * The small files as one tar file here (gzip'ed when `gzip`), so that its
 * length is known before it is sent: the host reads exactly that many bytes
 * of the stream with `head -c`.
 */
async function packSmall(
  files: ImageFile[],
  gzip: boolean,
): Promise<{ path: string; size: number }> {
  const root = files[0]!.path.slice(0, -files[0]!.name.length);
  const path = await Deno.makeTempFile({ prefix: "fabricd-ship-", suffix: ".tar" });
  const out = await new Deno.Command("sh", {
    args: [
      "-c",
      `o=$1; r=$2; shift 2; tar -C "$r" -cf - -- "$@" | ${gzip ? "gzip -6 -n" : "cat"} >"$o"`,
      "sh",
      path,
      root,
      ...files.map((f) => f.name),
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    await Deno.remove(path).catch(() => {});
    throw new ImageShipError(
      `Cannot pack the image's files: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return { path, size: (await Deno.stat(path)).size };
}
