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
 * One `exec` asks what the host has; one more carries the copy. Bulk data
 * never passes through this process: a local `cat` feeds the SSH channel with
 * the small files as one tar stream (gzip'ed when they travel alone: an
 * upgrade), then each large file, as its compressed form made once at build
 * time (`packed/NAME.zst`) when the host has zstd. The host reads the tar by
 * its length (`head -c`), hashes the compressed stream while it keeps it
 * (`tee packed | sha256`) and decompresses it into the file at the same time;
 * the SHA-256 of the compressed form (listed in `packed/manifest`) fixes the
 * content, and zstd checks its own checksum of the content. So nothing is
 * read twice, and a bridge there passes the same compressed bytes on down the
 * chain. Without zstd (or a packed form) a large file goes raw, hashed while
 * written. The same script then compares every hash with what this side
 * expects and installs the image, or removes the copy.
 * @module
 */
import type { SshConnection } from "./ssh_connection.ts";
import { shellQuote } from "./ssh_connection.ts";
import {
  COMPLETE,
  type ImageFile,
  LAUNCHER,
  MANIFEST,
  PACKED,
  type SelfImage,
} from "../image/image_dir.ts";

/** Cache directory on every host, as a shell expression. */
export const REMOTE_CACHE = '"$HOME/.cache/fabricd"';

/** Files at least this large travel on their own (compressed, if they have a packed form); smaller ones as one tar stream. */
const OWN_CHANNEL_BYTES = 4 << 20;

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
 * Makes sure `image` is in the host's cache and returns what was done.
 * @throws {ImageShipError} when the cache directory is not writable, a copy
 * fails, or a file's hash does not match on arrival (nothing is kept then).
 */
export async function shipImage(
  image: SelfImage,
  ssh: SshConnection,
  options: ShipOptions = {},
): Promise<ShipResult> {
  const started = performance.now();
  const host = ssh.target.host;
  const hashes = [...new Set(image.files.map((f) => f.sha256))];
  const allSmall = image.files.filter((f) => f.size < OWN_CHANNEL_BYTES);
  // Packed while the host answers (once per image in this process): a cold
  // copy sends every small file beside a large one, uncompressed. Another mix
  // (an upgrade) packs its own below.
  const coldTar = image.files.length > allSmall.length && allSmall.length > 0
    ? coldTarOf(image, allSmall)
    : null;
  const probe = await ssh.exec(
    `c=${REMOTE_CACHE}; if [ -f "$c/${image.hash}/${COMPLETE}" ]; then echo HAVE; exit 0; fi; ` +
      `mkdir -p "$c/files" 2>&1 && chmod 700 "$c" 2>&1 && [ -w "$c" ] || ` +
      `{ echo "NOWRITE $c"; exit 0; }; ` +
      `for s in ${hashes.join(" ")}; do [ -f "$c/files/$s" ] && echo "FILE $s"; done; ` +
      `command -v zstd >/dev/null 2>&1 && echo ZSTD; ` +
      `command -v openssl >/dev/null 2>&1 && echo OPENSSL; echo OK`,
    undefined,
    { timeoutMs: 15_000 },
  );
  if (probe.code !== 0) {
    throw new ImageShipError(`Cannot prepare the image cache on ${host}: ${probe.stderr.trim()}`);
  }
  const said = probe.stdout;
  const bytes = image.files.reduce((sum, f) => sum + f.size, 0);
  const elapsed = () => performance.now() - started;
  if (said.includes("HAVE")) {
    return {
      copied: false,
      bytes,
      missingBytes: 0,
      sent: 0,
      compression: "none",
      ms: elapsed(),
    };
  }
  if (said.includes("NOWRITE")) {
    const line = said.split("\n").find((l) => l.startsWith("NOWRITE")) ?? "";
    throw new ImageShipError(
      `Image cache on ${host} is not writable (${line.slice(8)}): ${
        said.replace(line, "").trim() || "permission denied"
      }; fix its permissions or free the disk`,
    );
  }
  const held = new Set(
    said.split("\n").filter((l) => l.startsWith("FILE ")).map((l) => l.slice(5).trim()),
  );
  // A forged expectation (tests) must see every file arrive.
  const missing = image.files.filter((f) => options.expectHash || !held.has(f.sha256));
  const total = missing.reduce((sum, f) => sum + f.size, 0);
  const tmp = `.tmp-${crypto.randomUUID().slice(0, 8)}`;
  const stream = await planStream(missing, {
    // OpenSSL uses the CPU's SHA instructions: several times faster than sha256sum.
    hasher: said.includes("OPENSSL") ? "openssl dgst -sha256 -r" : "sha256sum",
    zstd: said.includes("ZSTD"),
    expectHash: options.expectHash,
  });
  options.onCopy?.(0, total);
  const fitsCold = coldTar !== null && !stream.gzip && stream.small.length === allSmall.length;
  const tar = fitsCold
    ? await coldTar
    : stream.small.length > 0
    ? await packSmall(stream.small, stream.gzip)
    : null;
  try {
    const script = [
      `set -e; c=${REMOTE_CACHE}; t="$c/${tmp}"; mkdir -p "$t"; cd "$t"`,
      ...receiveLines(stream, tar?.size ?? 0),
      ...installLines(image, missing),
    ].join("\n");
    const out = await ssh.feed(["cat", ...(tar ? [tar.path] : []), ...stream.sources], script);
    if (out.code === WRONG_HASH && out.fed) {
      const wrong = stream.expected.filter((want) => !out.stdout.includes(`GOT ${want}\n`));
      throw new ImageShipError(
        `Image copied to ${host} does not match its SHA-256 (${
          wrong.map((line) => line.slice(65)).join(", ")
        }): it was removed and will not run; retry, and check the disk and the connection`,
      );
    }
    if (out.code !== 0 || !out.fed) {
      // stderr holds both ends: a local file that could not be read, or the host's complaint.
      throw new ImageShipError(
        `Copy to ${host} failed: ${out.stderr.trim() || `exit ${out.code}`}`,
      );
    }
    options.onCopy?.(total, total);
    return {
      copied: true,
      bytes,
      missingBytes: total,
      sent: (tar?.size ?? 0) + stream.sentBig,
      compression: stream.packed ? "zstd" : "none",
      ms: elapsed(),
    };
  } catch (error) {
    // Best effort: the error that matters is thrown below.
    await ssh.exec(`rm -rf ${REMOTE_CACHE}/${tmp}`).catch(() => {});
    throw error;
  } finally {
    if (tar && !fitsCold) await Deno.remove(tar.path).catch(() => {});
  }
}

/** The host's exit status when a file arrived with the wrong SHA-256 (the copy is removed). */
const WRONG_HASH = 3;

/** What travels on the one channel of a copy, in order. */
interface Stream {
  /** The small files, as one tar stream first. */
  small: ImageFile[];
  /** The tar stream is gzip'ed: only when no large file follows (an upgrade). */
  gzip: boolean;
  /** The large files after it, each as its compressed form when `packed` says so; `size`: bytes sent. */
  big: { file: ImageFile; packed: boolean; size: number }[];
  /** Local paths of the large files' bytes, in order. */
  sources: string[];
  sentBig: number;
  packed: boolean;
  hasher: string;
  /** `"<sha256> <name>"` per arrived file, in the order the host lists them. */
  expected: string[];
}

async function planStream(
  missing: ImageFile[],
  how: { hasher: string; zstd: boolean; expectHash: string | undefined },
): Promise<Stream> {
  const small = missing.filter((f) => f.size < OWN_CHANNEL_BYTES);
  const big = missing.filter((f) => f.size >= OWN_CHANNEL_BYTES).map((file) => {
    const packed = how.zstd && file.packed !== undefined && file.packedSha256 !== undefined;
    return { file, packed, size: file.size };
  });
  const sources: string[] = [];
  const expected: string[] = [];
  for (const entry of big) {
    sources.push(entry.packed ? entry.file.packed! : entry.file.path);
    if (entry.packed) entry.size = (await Deno.stat(entry.file.packed!)).size;
    const sha = entry.packed ? entry.file.packedSha256! : entry.file.sha256;
    expected.push(`${how.expectHash ?? sha} ${entry.file.name}`);
  }
  for (const f of small) expected.push(`${how.expectHash ?? f.sha256} ${f.name}`);
  return {
    small,
    gzip: big.length === 0,
    big,
    sources,
    sentBig: big.reduce((sum, b) => sum + b.size, 0),
    packed: big.some((b) => b.packed),
    hasher: how.hasher,
    expected,
  };
}

/** Per image hash: the tar of all its small files, made once and removed when this process ends. */
const coldTars = new Map<string, Promise<{ path: string; size: number }>>();
const coldTarPaths = new Set<string>();

function coldTarOf(
  image: SelfImage,
  small: ImageFile[],
): Promise<{ path: string; size: number }> {
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

/**
 * The host's side of the stream: the tar of small files (exactly `tarSize`
 * bytes, read with `head -c`; or all of the stream when nothing follows),
 * then each large file, hashed while written (a compressed one is kept as
 * `packed/NAME.zst` and decompressed through a FIFO at the same time), then
 * the small files hashed. Every hash is compared on the host with what this
 * side expects: a mismatch lists what arrived (`GOT <sha256> <name>`),
 * removes the copy and exits with {@linkcode WRONG_HASH}.
 */
function receiveLines(stream: Stream, tarSize: number): string[] {
  const q = shellQuote;
  const lines = [": >.got"];
  if (stream.small.length > 0) {
    lines.push(
      stream.big.length > 0
        ? `head -c ${tarSize} | tar -xf -`
        : `${stream.gzip ? "gzip -dc | " : ""}tar -xf -`,
    );
  }
  stream.big.forEach((entry, i) => {
    const name = q(entry.file.name);
    // All but the last large file are cut from the stream by their length.
    const from = i < stream.big.length - 1 ? `head -c ${entry.size} | ` : "";
    const at = entry.file.name.lastIndexOf("/");
    if (at > 0) lines.push(`mkdir -p ${q(entry.file.name.slice(0, at))}`);
    if (entry.packed) {
      lines.push(
        `mkdir -p ${q(`${PACKED}/${entry.file.name.slice(0, Math.max(at, 0))}`)}`,
        `rm -f .fifo; mkfifo .fifo; zstd -dcq <.fifo >${name} & z=$!`,
        `${from}tee .fifo ${q(`${PACKED}/${entry.file.name}.zst`)} | ${stream.hasher} >.h`,
        `wait "$z"; rm -f .fifo`,
      );
    } else {
      lines.push(`${from}tee ${name} | ${stream.hasher} >.h`);
    }
    lines.push(`read -r h _ <.h; echo "$h "${name} >>.got`);
  });
  if (stream.small.length > 0) {
    lines.push(
      `${stream.hasher} ${stream.small.map((f) => q(f.name)).join(" ")} | ` +
        `while read -r h n; do echo "$h \${n#\\*}"; done >>.got`,
    );
  }
  lines.push(
    `if [ "$(cat .got)" != ${q(stream.expected.join("\n"))} ]; then ` +
      `sed 's/^/GOT /' .got; cd /; rm -rf "$t"; exit ${WRONG_HASH}; fi`,
    "rm -f .got .h",
  );
  return lines;
}

/**
 * Completes the image on the host, in the same script once every arrived
 * file matched: the files it already held are linked in from `files/`, then
 * the manifest, `.complete` and the atomic rename. The
 * new files are linked into `files/` for the next image afterwards, in the
 * background: the image does not wait for that. Compressed forms are kept in
 * the store by their own hash, so the host passes them on down the chain
 * whichever image they came with. Few processes: a fork costs a millisecond.
 */
function installLines(image: SelfImage, sent: ImageFile[]): string[] {
  const arrived = new Set(sent.map((f) => f.name));
  const held = image.files.filter((f) => !arrived.has(f.name));
  const q = shellQuote;
  const packedOf = (f: ImageFile): string => `${PACKED}/${f.name}.zst`;
  const dirs = new Set<string>();
  for (const f of held) {
    for (const name of [f.name, ...(f.packedSha256 ? [packedOf(f)] : [])]) {
      const at = name.lastIndexOf("/");
      if (at > 0) dirs.add(name.slice(0, at));
    }
  }
  const before: string[] = [];
  if (dirs.size > 0) before.push(`mkdir -p ${[...dirs].map(q).join(" ")}`);
  const after: string[] = [];
  const packedLines: string[] = [];
  for (const f of image.files) {
    const store = `"$c/files/${f.sha256}"`;
    if (arrived.has(f.name)) after.push(`ln -f ${q(f.name)} ${store}`);
    else before.push(`{ ln ${store} ${q(f.name)} 2>/dev/null || cp ${store} ${q(f.name)}; }`);
    if (!f.packedSha256) continue;
    const packed = q(packedOf(f));
    const storePacked = `"$c/files/${f.packedSha256}"`;
    const line = `echo ${q(`${f.packedSha256}  ${f.name}.zst`)} >>${PACKED}/${MANIFEST}`;
    if (arrived.has(f.name)) {
      // Sent packed when the host has zstd; then it is there.
      packedLines.push(`if [ -f ${packed} ]; then ${line}; fi`);
      after.push(`if [ -f ${packed} ]; then ln -f ${packed} ${storePacked}; fi`);
    } else {
      before.push(
        `if [ -f ${storePacked} ]; then ln ${storePacked} ${packed} 2>/dev/null || ` +
          `cp ${storePacked} ${packed}; fi`,
      );
      packedLines.push(`if [ -f ${packed} ]; then ${line}; fi`);
    }
  }
  const executables = image.files.filter((f) => f.name === LAUNCHER || f.name === "deno");
  const final = `"$c/${image.hash}"`;
  return [
    ...before,
    ...packedLines,
    `chmod 0755 ${executables.map((f) => q(f.name)).join(" ")}`,
    // The manifest is text the build wrote: lines of a hash and a file name.
    `cat >${MANIFEST} <<'${MANIFEST_END}'\n${image.manifest}${
      image.manifest.endsWith("\n") ? "" : "\n"
    }${MANIFEST_END}`,
    `: >${COMPLETE}; cd /`,
    `if mv -T "$t" ${final} 2>/dev/null; then ` +
    `(set +e; cd ${final} && { ${after.join("; ") || ":"}; }) </dev/null >/dev/null 2>&1 & ` +
    `else rm -rf "$t"; fi`,
  ];
}

/** Ends the manifest's here-document; no manifest line can be this. */
const MANIFEST_END = "FABRICD_MANIFEST_END";
