/**
 * Ships an image to a host over an existing SSH connection: compressed, into
 * `~/.cache/fabricd/<hash>/`, verified by SHA-256 there, renamed into place
 * atomically, and skipped when the host already has that hash.
 * @module
 */
import type { SshConnection } from "../launchers/ssh_connection.ts";
import type { SelfImage } from "./self_image.ts";

/** File in an image directory listing `name sha256 size` per file. */
export const MANIFEST = ".manifest";

/** Cache directory on every host, as a shell expression. */
export const REMOTE_CACHE = '"$HOME/.cache/fabricd"';

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
  /** "zstd", "gzip" or "none" (nothing copied). */
  compression: string;
  ms: number;
}

/** Options of {@linkcode shipImage}. */
export interface ShipOptions {
  /** Draw a progress bar on standard error once a copy takes a moment. Default: when it is a terminal. */
  progress?: boolean;
  /** Skip the "already there" check and the final verification (tests of refusal only). */
  expectHash?: string;
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
  const probe = await ssh.exec(
    `c=${REMOTE_CACHE}; if [ -f "$c/${image.hash}/.complete" ]; then echo HAVE; exit 0; fi; ` +
      `mkdir -p "$c" 2>&1 && chmod 700 "$c" 2>&1 && [ -w "$c" ] || { echo "NOWRITE $c"; exit 0; }; ` +
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
  if (said.includes("HAVE")) {
    return { copied: false, bytes, sent: 0, compression: "none", ms: performance.now() - started };
  }
  if (said.includes("NOWRITE")) {
    const line = said.split("\n").find((l) => l.startsWith("NOWRITE")) ?? "";
    throw new ImageShipError(
      `Image cache on ${host} is not writable (${line.slice(8)}): ${
        said.replace(line, "").trim() || "permission denied"
      }; fix its permissions or free the disk`,
    );
  }
  const compression = said.includes("ZSTD") && await hasLocal("zstd") ? "zstd" : "gzip";
  // OpenSSL uses the CPU's SHA instructions: several times faster than sha256sum.
  const hasher = said.includes("OPENSSL") ? "openssl dgst -sha256 -r" : "sha256sum";
  const tmp = `.tmp-${crypto.randomUUID().slice(0, 8)}`;
  const progress = new Progress(host, bytes, options.progress ?? Deno.stderr.isTerminal());
  try {
    // Files travel side by side; each is hashed on the host as it is written,
    // so verifying costs no second pass over 100 MB.
    const arrived = await Promise.all(
      image.files.map((file) =>
        sendFile(ssh, { path: file.path, remoteName: `${tmp}/${file.name}` }, {
          compression,
          hasher,
          progress,
        })
      ),
    );
    const wrong = image.files.filter((f, i) =>
      arrived[i]!.sha256 !== (options.expectHash ?? f.sha256)
    );
    if (wrong.length > 0) {
      throw new ImageShipError(
        `Image copied to ${host} does not match its SHA-256 (${
          wrong.map((f) => f.name).join(", ")
        }): it was removed and will not run; retry, and check the disk and the connection`,
      );
    }
    const manifest = image.files.map((f) => `${f.name} ${f.sha256} ${f.size}`).join("\n");
    const finish = await ssh.exec(
      `set -e; c=${REMOTE_CACHE}; t="$c/${tmp}"; cd "$t"; ` +
        `chmod 0755 ${image.files.map((f) => f.name).join(" ")}; ` +
        `printf '${manifest}\n' > ${MANIFEST}; touch .complete; cd /; ` +
        `mv -T "$t" "$c/${image.hash}" 2>/dev/null || rm -rf "$t"`,
    );
    if (finish.code !== 0) {
      throw new ImageShipError(`Cannot install the image on ${host}: ${finish.stderr.trim()}`);
    }
    const sent = arrived.reduce((sum, a) => sum + a.sent, 0);
    return { copied: true, bytes, sent, compression, ms: performance.now() - started };
  } catch (error) {
    await ssh.exec(`rm -rf ${REMOTE_CACHE}/${tmp}`).catch(() => {});
    throw error;
  } finally {
    progress.done();
  }
}

async function sendFile(
  ssh: SshConnection,
  file: { path: string; remoteName: string },
  how: { compression: string; hasher: string; progress: Progress },
): Promise<{ sent: number; sha256: string }> {
  const { path, remoteName } = file;
  const { compression, hasher, progress } = how;
  // zstd's fast levels keep compression ahead of the link; gzip -1 where
  // zstd is missing on either side.
  const tool = compression === "zstd"
    ? ["zstd", "--fast=3", "-T0", "-q", "-c", path]
    : ["gzip", "-1", "-c", path];
  const decompress = compression === "zstd" ? "zstd -dcq" : "gzip -dc";
  const compressor = new Deno.Command(tool[0]!, {
    args: tool.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const remote = await ssh.spawn(
    `set -e; c=${REMOTE_CACHE}; mkdir -p "$c/$(dirname '${remoteName}')"; ` +
      `${decompress} | tee "$c/${remoteName}" | ${hasher}`,
  );
  const writer = remote.stdin.getWriter();
  let sent = 0;
  const local = await Deno.stat(path);
  for await (const chunk of compressor.stdout) {
    await writer.write(chunk);
    sent += chunk.length;
    progress.add(0, chunk.length);
  }
  await writer.close();
  const [packed, unpacked] = await Promise.all([compressor.output(), remote.output()]);
  progress.add(local.size, 0);
  if (!packed.success) {
    throw new ImageShipError(`Cannot compress ${path}: ${new TextDecoder().decode(packed.stderr)}`);
  }
  if (!unpacked.success) {
    throw new ImageShipError(
      `Copy to ${ssh.target.host} failed: ${
        new TextDecoder().decode(unpacked.stderr).trim() || `exit ${unpacked.code}`
      }`,
    );
  }
  return { sent, sha256: new TextDecoder().decode(unpacked.stdout).trim().split(/\s+/)[0] ?? "" };
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

/** A one-line progress bar, drawn only on a terminal and only after 500 ms. */
class Progress {
  #host: string;
  #total: number;
  #on: boolean;
  #done = 0;
  #sent = 0;
  #started = performance.now();
  #drawn = false;

  constructor(host: string, total: number, on: boolean) {
    this.#host = host;
    this.#total = total;
    this.#on = on;
  }

  add(done: number, sent: number): void {
    this.#done += done;
    this.#sent += sent;
    if (!this.#on || performance.now() - this.#started < 500) return;
    const mb = (n: number) => (n / 1e6).toFixed(1);
    const share = Math.min(1, this.#done / this.#total);
    const bar = "#".repeat(Math.round(share * 20)).padEnd(20, ".");
    const line = `\rCopying fabricd to ${this.#host}: [${bar}] ${mb(this.#done)}/${
      mb(this.#total)
    } MB (${mb(this.#sent)} MB sent)`;
    Deno.stderr.writeSync(new TextEncoder().encode(line));
    this.#drawn = true;
  }

  done(): void {
    if (this.#drawn) Deno.stderr.writeSync(new TextEncoder().encode("\n"));
  }
}
