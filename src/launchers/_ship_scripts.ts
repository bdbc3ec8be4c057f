/**
 * What runs on the host when an image is shipped there (`ship_image.ts`): the
 * probe that says what the host has, the receiving end of the one stream of a
 * copy, the check of every hash, and the install. Shell text for a POSIX
 * `sh`; names are quoted with {@linkcode shellQuote}.
 * @module
 */
import { shellQuote } from "./ssh_connection.ts";
import { tarArchive } from "./_tar.ts";
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
export const OWN_CHANNEL_BYTES = 4 << 20;

/**
 * The probe: its first line is `HAVE` (the image is complete there), `NOWRITE
 * <dir> <why>`, `OK` followed by `FILE <sha256>` for each file of the image
 * the host keeps and `ZSTD`/`OPENSSL` when it has them, or, with `cold`, `COLD
 * ZSTD` or `COLD RAW` when it holds none of the files: then the script goes on
 * with `cold` (which reads the stream and may use `$Z` and `$H`, the hasher).
 */
export function probeScript(image: SelfImage, cold: string | null): string {
  const hashes = [...new Set(image.files.map((f) => f.sha256))];
  return [
    `c=${REMOTE_CACHE}; if [ -f "$c/${image.hash}/${COMPLETE}" ]; then echo HAVE; exit 0; fi`,
    `if ! e=$(mkdir -p "$c/files" 2>&1 && chmod 700 "$c" 2>&1) || [ ! -w "$c" ]; then ` +
    `echo "NOWRITE $c"; echo "$e"; exit 0; fi`,
    `h=; for s in ${hashes.join(" ")}; do [ -f "$c/files/$s" ] && h="$h $s"; done`,
    "Z=RAW; command -v zstd >/dev/null 2>&1 && Z=ZSTD",
    // OpenSSL uses the CPU's SHA instructions: several times faster than sha256sum.
    'H=sha256sum; command -v openssl >/dev/null 2>&1 && H="openssl dgst -sha256 -r"',
    `if [ -n "$h" ]${
      cold === null ? " || :" : ""
    }; then echo OK; for s in $h; do echo "FILE $s"; done; ` +
    `[ "$Z" = ZSTD ] && echo ZSTD; [ "$H" = sha256sum ] || echo OPENSSL; exit 0; fi`,
    ...(cold === null ? [] : ['echo "COLD $Z"', cold]),
  ].join("\n");
}

/**
 * The host's exit status when a file arrived with the wrong SHA-256 (`GOT`
 * lines say what arrived) or a compressed one did not decompress (`UNPACK
 * <name>` lines): the copy is removed.
 */
export const WRONG_HASH = 3;

/**
 * The host's exit status when the checked copy could not be renamed into
 * place: `NOINSTALL` is followed by mv's complaint, or by `STALE` when a
 * directory of the image's name is there but is not a complete image. The
 * copy is removed.
 */
export const NOT_INSTALLED = 4;

/** What travels on the one channel of a copy, in order. */
export interface Stream {
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

export async function planStream(
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

/**
 * The host's side of the stream: the tar of hard links to the files it holds
 * (`links`, an upgrade only: {@linkcode linkArchive}), the tar of small files
 * (exactly `tarSize` bytes, read with `head -c`; or all of the stream when
 * nothing follows), then each large file, written as it arrives (a
 * compressed one kept as `packed/NAME.zst` and decompressed in the
 * background); then one run of the hasher hashes every arrived file from the
 * page cache, a compressed one in that form. The hashes are compared on the host with what this side
 * expects, in the shell itself: a mismatch lists what arrived (`GOT <sha256>
 * <name>`), removes the copy and exits with {@linkcode WRONG_HASH}; so does
 * a compressed file that does not decompress (`UNPACK <name>`). Few
 * processes: on a small host each start costs milliseconds (docs/ssh.md).
 */
export function receiveLines(
  stream: Stream,
  tarSize: number,
  links: { size: number } | null = null,
): string[] {
  const q = shellQuote;
  const lines = ["z="];
  // First, when the host holds some of the files: one tar of hard links to
  // them in its store, unpacked from the cache directory. A host whose file
  // system has no hard links gets copies in the install step instead.
  if (links) lines.push(`head -c ${links.size} | tar -C .. -xf - 2>/dev/null || :`);
  if (stream.small.length > 0) {
    lines.push(
      stream.big.length > 0
        ? `head -c ${tarSize} | tar -xf -`
        : `${stream.gzip ? "gzip -dc | " : ""}tar -xf -`,
    );
  }
  const names: string[] = [];
  stream.big.forEach((entry, i) => {
    const name = q(entry.file.name);
    // All but the last large file are cut from the stream by their length.
    const take = i < stream.big.length - 1 ? `head -c ${entry.size}` : "cat";
    const at = entry.file.name.lastIndexOf("/");
    if (at > 0) lines.push(`mkdir -p ${q(entry.file.name.slice(0, at))}`);
    // Received whole first, then decompressed in the background while the
    // files are hashed, all from the page cache: on two shared cores this
    // beats a pipeline (tee into zstd and the hasher at once) by about a
    // third, as every stage of a pipe wakes per 64 kB (docs/ssh.md).
    if (entry.packed) {
      const packed = `${PACKED}/${entry.file.name}.zst`;
      lines.push(
        `mkdir -p ${q(`${PACKED}/${entry.file.name.slice(0, Math.max(at, 0))}`)}`,
        `${take} >${q(packed)}`,
        `zstd -dq ${q(packed)} -o ${name} & z="$z $!"`,
      );
      names.push(packed);
    } else {
      lines.push(`${take} >${name}`);
      names.push(entry.file.name);
    }
  });
  names.push(...stream.small.map((f) => f.name));
  if (names.length === 0) return lines;
  // Two words per file, as either hasher prints them: the hash, then the name
  // (openssl's starts with `*`: no pathname expansion while they are split).
  lines.push(`set -f; set -- $(${stream.hasher} ${names.map(q).join(" ")}); set +f`);
  const checks = stream.expected.map((line, i) => `[ "\${${2 * i + 1}}" = ${line.slice(0, 64)} ]`);
  const got = stream.expected.map((line, i) => `"\${${2 * i + 1}}" ${q(line.slice(65))}`);
  lines.push(
    `if ! { ${checks.join(" && ")}; }; then printf 'GOT %s %s\\n' ${got.join(" ")}; ` +
      `kill $z 2>/dev/null || :; cd /; rm -rf "$t"; exit ${WRONG_HASH}; fi`,
  );
  const packed = stream.big.filter((entry) => entry.packed).map((e) =>
    `${PACKED}/${e.file.name}.zst`
  );
  if (packed.length === 0) return lines;
  // zstd checks its own checksum of the content: a decompression that fails
  // (a stream cut or spoilt before it was hashed, a disk error, a zstd that
  // cannot read it) ends the copy like a wrong hash. Every one is waited for,
  // in the order they started, so none writes into the copy as it is removed.
  lines.push(
    `set -- $z; u=; for n in ${packed.map(q).join(" ")}; do wait "$1" || u="$u $n"; shift; done`,
    `if [ -n "$u" ]; then printf 'UNPACK %s\\n' $u; cd /; rm -rf "$t"; exit ${WRONG_HASH}; fi`,
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
export function installLines(image: SelfImage, sent: ImageFile[]): string[] {
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
  // The link archive made them (linkArchive); the commands run only where it could not.
  if (dirs.size > 0) {
    const list = [...dirs].map(q);
    before.push(`${list.map((d) => `[ -d ${d} ]`).join(" && ")} || mkdir -p ${list.join(" ")}`);
  }
  const after: string[] = [];
  const packedLines: string[] = [];
  for (const f of image.files) {
    const store = `"$c/files/${f.sha256}"`;
    if (arrived.has(f.name)) after.push(`ln -f ${q(f.name)} ${store}`);
    else {
      before.push(
        `[ -e ${q(f.name)} ] || { ln ${store} ${q(f.name)} 2>/dev/null || cp ${store} ${
          q(f.name)
        }; }`,
      );
    }
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
  return [
    ...before,
    ...packedLines,
    `chmod 0755 ${executables.map((f) => q(f.name)).join(" ")}`,
    // The manifest is text the build wrote: lines of a hash and a file name
    // (printf is built into the shell; a here-document would need a cat).
    `printf '%s\\n' ${manifestLines(image.manifest).map(q).join(" ")} >${MANIFEST}`,
    `: >${COMPLETE}; cd /`,
    ...renameLines(image.hash, after),
  ];
}

/**
 * The copy `$t`, complete, renamed to `$c/<hash>` with a plain `mv` (POSIX;
 * `mv -T` is GNU's): rename(2), atomic, as the name is not there. Another
 * process may install the same image at the same moment; then ours is
 * redundant and removed, also when that image appeared between the test and
 * the rename and `mv` moved ours into it. A leftover directory of the name
 * that is empty gives way; one that is not a complete image, or a rename that
 * fails, ends the script with {@linkcode NOT_INSTALLED}. `after` runs in the
 * installed image, in the background.
 */
function renameLines(hash: string, after: string[]): string[] {
  const ours = '"$d/${t##*/}"';
  return [
    `d="$c/${hash}"`,
    `if [ -f "$d/${COMPLETE}" ]; then rm -rf "$t" || :`,
    `else [ ! -d "$d" ] || rmdir "$d" 2>/dev/null || :`,
    `if e=$(mv "$t" "$d" 2>&1) && [ ! -d ${ours} ]; then ` +
    `(set +e; cd "$d" && { ${after.join("; ") || ":"}; }) </dev/null >/dev/null 2>&1 &`,
    `elif [ -f "$d/${COMPLETE}" ]; then rm -rf "$t" ${ours} || :`,
    `else [ ! -d "$d" ] || e=STALE; rm -rf "$t" ${ours} 2>/dev/null || :; ` +
    `printf 'NOINSTALL %s\\n' "$e"; exit ${NOT_INSTALLED}; fi; fi`,
  ];
}

/** The manifest's lines, without the newline that ends the last one. */
function manifestLines(manifest: string): string[] {
  return manifest.replace(/\n$/, "").split("\n");
}

/**
 * The tar of hard links that gives the copy in `tmp` (a directory of the
 * cache) the files of `held`, which the host keeps in its store
 * (`files/<sha256>`): one `tar` there instead of an `ln` per file. Names are
 * from the cache directory, where it is unpacked.
 */
export function linkArchive(held: readonly ImageFile[], tmp: string): Uint8Array<ArrayBuffer> {
  return tarArchive(
    held.map((f) => ({ name: `${tmp}/${f.name}`, linkTo: `files/${f.sha256}` })),
    Math.floor(Date.now() / 1000),
  );
}
