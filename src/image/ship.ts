/**
 * Ships an image to a host over an existing SSH connection, into
 * `~/.cache/fabricd/<hash>/`, verified by SHA-256 there, renamed into place
 * atomically, and skipped when the host already has that hash.
 *
 * Bulk data never passes through this process: a local program feeds the SSH
 * channel, and the host hashes each file while writing it (`tee | sha256`), so
 * no file is read twice. Large files are compressed only when that pays: the
 * first 16 MiB go raw and time the link (less the time of an empty command on
 * the same connection), and the rest is compressed with zstd
 * when the link is slower than about 100 MB/s (a WAN), raw otherwise (a LAN,
 * where compressing would cost more than it saves). The manifest comes from the
 * build, so nothing is hashed here at spawn time.
 * @module
 */
import type { SshConnection } from "../launchers/ssh_connection.ts";
import { shellQuote } from "../launchers/ssh_connection.ts";
import { COMPLETE, type ImageFile, LAUNCHER, MANIFEST, type SelfImage } from "./image_dir.ts";

/** Cache directory on every host, as a shell expression. */
export const REMOTE_CACHE = '"$HOME/.cache/fabricd"';

/** Files at least this large travel on their own channel; smaller ones share one tar stream. */
const OWN_CHANNEL_BYTES = 4 << 20;

/** The raw first part of a large file that times the link. */
const SAMPLE_BYTES = 16 << 20;

/** Below this link speed (MB/s), zstd -1 sends a large file faster than raw bytes. */
const COMPRESS_BELOW_MBPS = 100;

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
  /** Bytes sent over the connection. */
  sent: number;
  /** "zstd" when a large file was compressed, "none" otherwise. */
  compression: string;
  /** The link speed the first part measured, MB/s (0 when nothing was timed). */
  linkMBps: number;
  ms: number;
}

/** Options of {@linkcode shipImage}. */
export interface ShipOptions {
  /** Compare every arrived file with this hash instead (tests of refusal only). */
  expectHash?: string;
}

interface Arrived {
  name: string;
  sha256: string;
  sent: number;
  compressed: boolean;
  linkMBps: number;
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
  await ssh.open();
  const probe = await ssh.exec(
    `c=${REMOTE_CACHE}; if [ -f "$c/${image.hash}/${COMPLETE}" ]; then echo HAVE; exit 0; fi; ` +
      `mkdir -p "$c" 2>&1 && chmod 700 "$c" 2>&1 && [ -w "$c" ] || { echo "NOWRITE $c"; exit 0; }; ` +
      `command -v zstd >/dev/null 2>&1 && echo ZSTD; ` +
      `command -v openssl >/dev/null 2>&1 && echo OPENSSL; echo OK`,
    undefined,
    { timeoutMs: 15_000 },
  );
  const execMs = performance.now() - started;
  if (probe.code !== 0) {
    throw new ImageShipError(`Cannot prepare the image cache on ${host}: ${probe.stderr.trim()}`);
  }
  const said = probe.stdout;
  const bytes = image.files.reduce((sum, f) => sum + f.size, 0);
  const elapsed = () => performance.now() - started;
  if (said.includes("HAVE")) {
    return { copied: false, bytes, sent: 0, compression: "none", linkMBps: 0, ms: elapsed() };
  }
  if (said.includes("NOWRITE")) {
    const line = said.split("\n").find((l) => l.startsWith("NOWRITE")) ?? "";
    throw new ImageShipError(
      `Image cache on ${host} is not writable (${line.slice(8)}): ${
        said.replace(line, "").trim() || "permission denied"
      }; fix its permissions or free the disk`,
    );
  }
  const tmp = `.tmp-${crypto.randomUUID().slice(0, 8)}`;
  const how: Transfer = {
    ssh,
    dir: `"$c/${tmp}"`,
    // OpenSSL uses the CPU's SHA instructions: several times faster than sha256sum.
    hasher: said.includes("OPENSSL") ? "openssl dgst -sha256 -r" : "sha256sum",
    zstd: said.includes("ZSTD") && await hasLocal("zstd"),
    execMs,
  };
  try {
    const big = image.files.filter((f) => f.size >= OWN_CHANNEL_BYTES);
    const small = image.files.filter((f) => f.size < OWN_CHANNEL_BYTES);
    const arrived = (await Promise.all([
      ...big.map((file) => sendLarge(file, how)),
      sendSmall(small, how),
    ])).flat();
    const got = new Map(arrived.map((a) => [a.name, a.sha256]));
    const wrong = image.files.filter((f) => got.get(f.name) !== (options.expectHash ?? f.sha256));
    if (wrong.length > 0) {
      throw new ImageShipError(
        `Image copied to ${host} does not match its SHA-256 (${
          wrong.map((f) => f.name).join(", ")
        }): it was removed and will not run; retry, and check the disk and the connection`,
      );
    }
    const executables = image.files.filter((f) => f.name === LAUNCHER || f.name === "deno");
    const finish = await ssh.exec(
      `set -e; c=${REMOTE_CACHE}; t="$c/${tmp}"; cd "$t"; ` +
        `chmod 0755 ${executables.map((f) => shellQuote(f.name)).join(" ")}; ` +
        `cat >${MANIFEST}; touch ${COMPLETE}; cd /; ` +
        `mv -T "$t" "$c/${image.hash}" 2>/dev/null || rm -rf "$t"`,
      image.manifest,
    );
    if (finish.code !== 0) {
      throw new ImageShipError(`Cannot install the image on ${host}: ${finish.stderr.trim()}`);
    }
    const sent = arrived.reduce((sum, a) => sum + a.sent, 0);
    const timed = arrived.find((a) => a.linkMBps > 0);
    return {
      copied: true,
      bytes,
      sent,
      compression: arrived.some((a) => a.compressed) ? "zstd" : "none",
      linkMBps: timed?.linkMBps ?? 0,
      ms: elapsed(),
    };
  } catch (error) {
    await ssh.exec(`rm -rf ${REMOTE_CACHE}/${tmp}`).catch(() => {});
    throw error;
  }
}

interface Transfer {
  ssh: SshConnection;
  /** The temporary image directory on the host, a shell word using `$c`. */
  dir: string;
  hasher: string;
  /** zstd on both ends. */
  zstd: boolean;
  /** How long an empty command takes on this connection, ms: taken off the link timing. */
  execMs: number;
}

/** One large file on its own channel, hashed on the host as it is written. */
async function sendLarge(file: ImageFile, how: Transfer): Promise<Arrived> {
  const { ssh, dir, hasher } = how;
  const name = shellQuote(file.name);
  const prefix = `set -e; c=${REMOTE_CACHE}; mkdir -p ${dir}; cd ${dir}; `;
  let compressed = false;
  let linkMBps = 0;
  let remote = `${prefix}tee ${name} | ${hasher}`;
  let producer = ["cat", file.path];
  if (how.zstd && file.size > 4 * SAMPLE_BYTES) {
    // Time the link with the first part, sent raw; the host keeps it aside.
    const head = new Uint8Array(SAMPLE_BYTES);
    const opened = await Deno.open(file.path);
    try {
      let at = 0;
      while (at < head.length) {
        const n = await opened.read(head.subarray(at));
        if (n === null) break;
        at += n;
      }
    } finally {
      opened.close();
    }
    const began = performance.now();
    const part = await ssh.exec(`${prefix}cat >.head-${name}`, head);
    if (part.code !== 0) throw copyFailed(ssh, part.stderr, part.code);
    const seconds = Math.max(performance.now() - began - how.execMs, 1) / 1000;
    linkMBps = SAMPLE_BYTES / 1e6 / seconds;
    compressed = linkMBps < COMPRESS_BELOW_MBPS;
    const rest = `tail -c +${SAMPLE_BYTES + 1} "$1"`;
    producer = compressed
      ? ["sh", "-c", `${rest} | zstd -1 -T0 -c -v`, "sh", file.path]
      : ["sh", "-c", rest, "sh", file.path];
    remote = `${prefix}{ cat .head-${name}; ${compressed ? "zstd -dcq" : "cat"}; } | ` +
      `tee ${name} | ${hasher}; rm -f .head-${name}`;
  }
  const out = await ssh.feed(producer, remote);
  if (!out.fed) throw new ImageShipError(`Cannot read ${file.path}: ${out.stderr.trim()}`);
  if (out.code !== 0) throw copyFailed(ssh, out.stderr, out.code);
  const packed = compressed ? zstdOutputBytes(out.stderr) : null;
  const sent = packed === null ? file.size : SAMPLE_BYTES + packed;
  const sha256 = out.stdout.trim().split(/\s+/)[0] ?? "";
  return { name: file.name, sha256, sent, compressed, linkMBps };
}

/** The small files, as one tar stream; hashed on the host after unpacking (they are tiny). */
async function sendSmall(files: ImageFile[], how: Transfer): Promise<Arrived[]> {
  if (files.length === 0) return [];
  const { ssh, dir, hasher } = how;
  const root = files[0]!.path.slice(0, -files[0]!.name.length);
  const names = files.map((f) => f.name);
  const out = await ssh.feed(
    ["tar", "-C", root, "-cf", "-", "--", ...names],
    `set -e; c=${REMOTE_CACHE}; mkdir -p ${dir}; cd ${dir}; tar -xf -; ` +
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
  return files.map((f) => ({
    name: f.name,
    sha256: hashes.get(f.name) ?? "",
    sent: f === files[0] ? sent : 0,
    compressed: false,
    linkMBps: 0,
  }));
}

/** What zstd -v said it wrote: "(N B => M B, ...)", in KiB/MiB/GiB for large sizes. */
function zstdOutputBytes(said: string): number | null {
  const match = /=>\s*([\d.]+) (B|KiB|MiB|GiB)\b/.exec(said);
  if (!match) return null;
  const scale = { B: 1, KiB: 1 << 10, MiB: 1 << 20, GiB: 1 << 30 }[match[2] as "B"];
  return Math.round(Number(match[1]) * scale);
}

function copyFailed(ssh: SshConnection, stderr: string, code: number): ImageShipError {
  return new ImageShipError(
    `Copy to ${ssh.target.host} failed: ${stderr.trim() || `exit ${code}`}`,
  );
}

async function hasLocal(tool: string): Promise<boolean> {
  try {
    const out = await new Deno.Command(tool, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}
