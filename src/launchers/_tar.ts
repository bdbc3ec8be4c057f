/**
 * A POSIX ustar archive written here (IEEE Std 1003.1, `pax` "ustar
 * Interchange Format"), for the small part of an upgrade: the files a host
 * lacks, and hard links to the files it holds in its store, so that one
 * `tar -x` there makes the whole image directory instead of a process per
 * held file (about 5 ms each on the test network; an upgrade held about 80).
 * Every `tar` reads it; members are regular files and hard links only.
 * @module
 */

/** A tar block: headers, and the unit file data is padded to. */
const BLOCK = 512;

/** Longest member name a header here holds (ustar's `name` field; `prefix` is not used). */
export const MAX_NAME_BYTES = 100;

/** The largest number the 11 octal digits of the `size` and `mtime` fields hold. */
const MAX_OCTAL = 0o77777777777;

const encoder = new TextEncoder();

/** One member: a file's bytes, or a hard link to `linkTo` (a path relative to where the archive is unpacked). */
export type TarMember =
  | { name: string; bytes: Uint8Array; mode: number }
  | { name: string; linkTo: string };

/**
 * The archive of `members`, in order, ended by two zero blocks. Owner and
 * group are 0 with no names (a non-root `tar -x` makes the files its own),
 * and every time is `mtime` (seconds since the epoch).
 *
 * @throws {RangeError} when a name or link target is empty or longer than
 * 100 bytes, a mode is not from 0 to 0o7777, or a size or the time does not
 * fit the format.
 */
export function tarArchive(members: readonly TarMember[], mtime: number): Uint8Array<ArrayBuffer> {
  const pieces: Uint8Array[] = [];
  let total = 0;
  for (const member of members) {
    const file = "bytes" in member;
    const size = file ? member.bytes.length : 0;
    const header = tarHeader(member.name, {
      size,
      mode: file ? member.mode : 0o644,
      mtime,
      link: file ? null : member.linkTo,
    });
    pieces.push(header);
    total += header.length;
    if (file) {
      const padded = size + (BLOCK - (size % BLOCK)) % BLOCK;
      pieces.push(member.bytes);
      if (padded > size) pieces.push(new Uint8Array(padded - size));
      total += padded;
    }
  }
  const archive = new Uint8Array(total + 2 * BLOCK);
  let at = 0;
  for (const piece of pieces) {
    archive.set(piece, at);
    at += piece.length;
  }
  return archive;
}

/** A ustar header: a regular file of `size` bytes, or (with `link`) a hard link. */
function tarHeader(
  name: string,
  meta: { size: number; mode: number; mtime: number; link: string | null },
): Uint8Array {
  const { size, mode, mtime, link } = meta;
  const header = new Uint8Array(BLOCK);
  header.set(field("name", name), 0);
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
    throw new RangeError(`A tar member mode must be 0 to 0o7777, got ${mode}`);
  }
  for (const [what, value] of [["size", size], ["time", mtime]] as const) {
    if (!Number.isSafeInteger(value) || value < 0 || value > MAX_OCTAL) {
      throw new RangeError(`A tar member ${what} must be 0 to ${MAX_OCTAL}, got ${value}`);
    }
  }
  octal(header, 100, 8, mode);
  octal(header, 108, 8, 0); // uid
  octal(header, 116, 8, 0); // gid
  octal(header, 124, 12, size);
  octal(header, 136, 12, mtime);
  header[156] = link === null ? 0x30 : 0x31; // typeflag: '0' a regular file, '1' a hard link
  if (link !== null) header.set(field("link target", link), 157);
  header.set(encoder.encode("ustar\u000000"), 257); // magic "ustar\0", version "00"
  octal(header, 329, 8, 0); // devmajor
  octal(header, 337, 8, 0); // devminor
  // The checksum is the sum of the header's bytes with its own field read as spaces.
  header.fill(0x20, 148, 156);
  octal(header, 148, 7, header.reduce((sum, byte) => sum + byte, 0)); // the 8th byte stays a space
  return header;
}

function field(what: string, text: string): Uint8Array {
  const bytes = encoder.encode(text);
  if (bytes.length === 0 || bytes.length > MAX_NAME_BYTES) {
    throw new RangeError(`A tar member ${what} must be 1 to 100 bytes, got ${bytes.length}`);
  }
  return bytes;
}

/** Writes `value` in octal into `width` bytes at `offset`: zero-padded digits, then a NUL. */
function octal(header: Uint8Array, offset: number, width: number, value: number): void {
  header.set(encoder.encode(value.toString(8).padStart(width - 1, "0")), offset);
  header[offset + width - 1] = 0;
}
