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
 * Bulk data never passes through this process: a local program feeds the SSH
 * channel. A large file travels as its compressed form made once at build
 * time (`packed/NAME.zst`), when the host has zstd. The host hashes that
 * stream while it keeps it (`tee packed | sha256`) and decompresses it into
 * the file at the same time; the SHA-256 of the compressed form (listed in
 * `packed/manifest`) fixes the content, and zstd checks its own checksum of
 * the content. So nothing is read twice, and a bridge there passes the same
 * compressed bytes on down the chain. Without zstd (or a packed form) the file
 * goes raw, hashed while written. Small files go as one tar stream, gzip'ed
 * when they travel alone (an upgrade).
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

/** Files at least this large travel on their own channel; smaller ones share one tar stream. */
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
  const tmp = `.tmp-${crypto.randomUUID().slice(0, 8)}`;
  const how: Transfer = {
    ssh,
    dir: `"$c/${tmp}"`,
    // OpenSSL uses the CPU's SHA instructions: several times faster than sha256sum.
    hasher: said.includes("OPENSSL") ? "openssl dgst -sha256 -r" : "sha256sum",
    zstd: said.includes("ZSTD"),
  };
  const total = missing.reduce((sum, f) => sum + f.size, 0);
  let landed = 0;
  const landing = <T>(files: ImageFile[], sending: Promise<T>): Promise<T> =>
    sending.then((value) => {
      landed += files.reduce((sum, f) => sum + f.size, 0);
      if (files.length > 0) options.onCopy?.(landed, total);
      return value;
    });
  options.onCopy?.(0, total);
  try {
    const big = missing.filter((f) => f.size >= OWN_CHANNEL_BYTES);
    const small = missing.filter((f) => f.size < OWN_CHANNEL_BYTES);
    const arrived = (await Promise.all([
      ...big.map((file) => landing([file], sendLarge(file, how))),
      // Alone (an upgrade), the small files are worth compressing; beside a
      // large file they would only take CPU from it.
      landing(small, sendSmall(small, how, big.length === 0)),
    ])).flat();
    const got = new Map(arrived.map((a) => [a.name, a]));
    const wrong = missing.filter((f) => {
      const a = got.get(f.name);
      const expected = options.expectHash ?? (a?.compressed ? f.packedSha256 : f.sha256);
      return a?.sha256 !== expected;
    });
    if (wrong.length > 0) {
      throw new ImageShipError(
        `Image copied to ${host} does not match its SHA-256 (${
          wrong.map((f) => f.name).join(", ")
        }): it was removed and will not run; retry, and check the disk and the connection`,
      );
    }
    await install(image, missing, tmp, how);
    return {
      copied: true,
      bytes,
      missingBytes: total,
      sent: arrived.reduce((sum, a) => sum + a.sent, 0),
      compression: arrived.some((a) => a.compressed) ? "zstd" : "none",
      ms: elapsed(),
    };
  } catch (error) {
    // Best effort: the error that matters is thrown below.
    await ssh.exec(`rm -rf ${REMOTE_CACHE}/${tmp}`).catch(() => {});
    throw error;
  }
}

interface Transfer {
  ssh: SshConnection;
  /** The temporary image directory on the host, a shell word using `$c`. */
  dir: string;
  hasher: string;
  /** zstd on the host. */
  zstd: boolean;
}

/**
 * Completes the image on the host: the files it already held are linked in
 * from `files/`, then the manifest, `.complete` and the atomic rename. The
 * new files are linked into `files/` for the next image afterwards, in the
 * background: the image does not wait for that. Compressed forms are kept in
 * the store by their own hash, so the host passes them on down the chain
 * whichever image they came with. Few processes: a fork costs a millisecond.
 */
async function install(
  image: SelfImage,
  sent: ImageFile[],
  tmp: string,
  how: Transfer,
): Promise<void> {
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
  const finish = await how.ssh.exec(
    [
      `set -e; c=${REMOTE_CACHE}; t="$c/${tmp}"; mkdir -p "$t"; cd "$t"`,
      ...before,
      ...packedLines,
      `chmod 0755 ${executables.map((f) => q(f.name)).join(" ")}`,
      `cat >${MANIFEST}; : >${COMPLETE}; cd /`,
      `if mv -T "$t" ${final} 2>/dev/null; then ` +
      `(set +e; cd ${final} && { ${after.join("; ") || ":"}; }) </dev/null >/dev/null 2>&1 & ` +
      `else rm -rf "$t"; fi`,
    ].join("\n"),
    image.manifest,
  );
  if (finish.code !== 0) {
    throw new ImageShipError(
      `Cannot install the image on ${how.ssh.target.host}: ${finish.stderr.trim()}`,
    );
  }
}

/** One large file on its own channel, hashed on the host as it is written. */
async function sendLarge(file: ImageFile, how: Transfer): Promise<Arrived> {
  const { ssh, dir, hasher } = how;
  const name = shellQuote(file.name);
  const prefix = `set -e; c=${REMOTE_CACHE}; mkdir -p ${dir}; cd ${dir}; `;
  const packed = how.zstd && file.packed && file.packedSha256 ? file.packed : null;
  // Compressed: tee keeps the stream and feeds zstd through a FIFO while the
  // hasher reads the same bytes; zstd's status is checked after.
  const out = packed
    ? await ssh.feed(
      ["cat", packed],
      `${prefix}mkdir -p "$(dirname ${PACKED}/${name})"; f=.fifo-$$; rm -f "$f"; mkfifo "$f"; ` +
        `zstd -dcq <"$f" >${name} & z=$!; ` +
        `tee "$f" ${PACKED}/${name}.zst | ${hasher}; wait "$z"; rm -f "$f"`,
    )
    : await ssh.feed(["cat", file.path], `${prefix}tee ${name} | ${hasher}`);
  if (!out.fed) {
    throw new ImageShipError(`Cannot read ${packed ?? file.path}: ${out.stderr.trim()}`);
  }
  if (out.code !== 0) throw copyFailed(ssh, out.stderr, out.code);
  const sent = packed ? (await Deno.stat(packed)).size : file.size;
  const sha256 = out.stdout.trim().split(/\s+/)[0] ?? "";
  return { name: file.name, sha256, sent, compressed: packed !== null };
}

/** The small files, as one tar stream (gzip'ed with `gzip`); hashed on the host after unpacking (they are tiny). */
async function sendSmall(files: ImageFile[], how: Transfer, gzip: boolean): Promise<Arrived[]> {
  if (files.length === 0) return [];
  const { ssh, dir, hasher } = how;
  const root = files[0]!.path.slice(0, -files[0]!.name.length);
  const names = files.map((f) => f.name);
  const out = await ssh.feed(
    gzip
      ? ["sh", "-c", 'r=$1; shift; tar -C "$r" -cf - -- "$@" | gzip -6 -n', "sh", root, ...names]
      : ["tar", "-C", root, "-cf", "-", "--", ...names],
    `set -e; c=${REMOTE_CACHE}; mkdir -p ${dir}; cd ${dir}; ${
      gzip ? "gzip -dc | " : ""
    }tar -xf -; ` +
      `${hasher} ${names.map(shellQuote).join(" ")}`,
  );
  if (!out.fed) throw new ImageShipError(`Cannot pack the image's files: ${out.stderr.trim()}`);
  if (out.code !== 0) throw copyFailed(ssh, out.stderr, out.code);
  const hashes = new Map<string, string>();
  for (const line of out.stdout.split("\n")) {
    const match = /^([0-9a-f]{64}) [ *]?\*?(.+)$/.exec(line.trim());
    if (match) hashes.set(match[2]!, match[1]!);
  }
  const sent = files.reduce((sum, f) => sum + f.size, 0);
  return files.map((f, i) => ({
    name: f.name,
    sha256: hashes.get(f.name) ?? "",
    sent: i === 0 ? sent : 0,
    compressed: false,
  }));
}

function copyFailed(ssh: SshConnection, stderr: string, code: number): ImageShipError {
  return new ImageShipError(
    `Copy to ${ssh.target.host} failed: ${stderr.trim() || `exit ${code}`}`,
  );
}
