/**
 * A POSIX ustar archive of hard links (IEEE Std 1003.1, `pax` "ustar
 * Interchange Format"), written here for an upgrade: the files a host already
 * holds in its store reach the new image directory through one `tar -x`
 * there instead of an `ln` per file (about 5 ms each on the test network; an
 * upgrade held about 80). Every `tar` reads it.
 * @module
 */

/** A tar block: a header, and the unit an archive is made of. */
const BLOCK = 512;

/** Longest member name or link target a header here holds (ustar's `name` field; `prefix` is not used). */
export const MAX_NAME_BYTES = 100;

/** The largest number the 11 octal digits of the `mtime` field hold. */
const MAX_OCTAL = 0o77777777777;

const encoder = new TextEncoder();

/** One member: a hard link `name` to `linkTo` (both paths relative to where the archive is unpacked). */
export interface TarLink {
  name: string;
  linkTo: string;
}

/**
 * The archive of `links`, in order, ended by two zero blocks. Owner and
 * group are 0 with no names (a non-root `tar -x` makes the links its own),
 * and every time is `mtime` (seconds since the epoch).
 *
 * @throws {RangeError} when a name or link target is empty or longer than
 * 100 bytes, or the time does not fit the format.
 */
export function tarArchive(links: readonly TarLink[], mtime: number): Uint8Array<ArrayBuffer> {
  if (!Number.isSafeInteger(mtime) || mtime < 0 || mtime > MAX_OCTAL) {
    throw new RangeError(`A tar member time must be 0 to ${MAX_OCTAL}, got ${mtime}`);
  }
  const archive = new Uint8Array((links.length + 2) * BLOCK);
  links.forEach((link, i) =>
    writeHeader(archive.subarray(i * BLOCK, (i + 1) * BLOCK), link, mtime)
  );
  return archive;
}

/** Writes the ustar header of hard link `link` into the zeroed block `header`. */
function writeHeader(header: Uint8Array, link: TarLink, mtime: number): void {
  header.set(field("name", link.name), 0);
  octal(header, 100, 8, 0o644); // mode (a link takes its target's)
  octal(header, 108, 8, 0); // uid
  octal(header, 116, 8, 0); // gid
  octal(header, 124, 12, 0); // size: a link has no data
  octal(header, 136, 12, mtime);
  header[156] = 0x31; // typeflag '1': a hard link
  header.set(field("link target", link.linkTo), 157);
  header.set(encoder.encode("ustar\u000000"), 257); // magic "ustar\0", version "00"
  octal(header, 329, 8, 0); // devmajor
  octal(header, 337, 8, 0); // devminor
  // The checksum is the sum of the header's bytes with its own field read as spaces.
  header.fill(0x20, 148, 156);
  octal(header, 148, 7, header.reduce((sum, byte) => sum + byte, 0)); // the 8th byte stays a space
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
