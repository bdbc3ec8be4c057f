/**
 * The image as one file to copy: a POSIX `sh` stub followed by the image
 * directory as a gzip-compressed tar. On first run the stub unpacks it into
 * `~/.cache/fabricd/<hash>/` (the cache the SSH launcher ships to), checks
 * every file against the manifest and execs the image's launcher; later runs
 * exec at once. What `deno compile` gives where Deno's `denort` can be had,
 * built from nothing but `sh`, `tail`, `gzip`, `tar` and `sha256sum` (or
 * `openssl`) on the target.
 *
 * Exit codes of the stub itself: 65 when the payload does not match its
 * manifest (a damaged copy), 73 when the cache directory cannot be written.
 * @module
 */
import { MANIFEST, type SelfImage } from "./image_dir.ts";

/** Width of the payload offset in the stub, so the stub's length is known before it is filled. */
const OFFSET_DIGITS = 10;

/** The stub for `image`, with the payload starting at byte `offset` (1-based, as `tail -c +N`). */
export function selfExtractingStub(hash: string, offset: number): string {
  const at = String(offset).padStart(OFFSET_DIGITS, "0");
  return `#!/bin/sh
# fabricd, self-extracting image ${hash}.
# First run: unpacks into ~/.cache/fabricd/<hash>/ and checks every file; then runs fabricd.
h=${hash}
c="$HOME/.cache/fabricd"
d="$c/$h"
if [ ! -f "$d/.complete" ]; then
  mkdir -p "$c" 2>/dev/null && chmod 700 "$c" && t=$(mktemp -d "$c/.unpack-XXXXXX") || {
    echo "fabricd: cannot write the image cache $c: fix its permissions or free the disk" >&2
    exit 73
  }
  if ! tail -c +${at} "$0" | gzip -dc | tar -xf - -C "$t"; then
    rm -rf "$t"
    echo "fabricd: cannot unpack $0 into $c: the copy is damaged or the disk is full" >&2
    exit 65
  fi
  if command -v sha256sum >/dev/null 2>&1; then
    (cd "$t" && sha256sum -c --quiet ${MANIFEST} >/dev/null 2>&1)
  else
    (cd "$t" && while read -r s f; do
      [ "$(openssl dgst -sha256 -r "$f" | cut -d' ' -f1)" = "$s" ] || exit 1
    done <${MANIFEST})
  fi || {
    rm -rf "$t"
    echo "fabricd: $0 does not match its SHA-256 manifest: copy it again" >&2
    exit 65
  }
  : >"$t/.complete"
  mv -T "$t" "$d" 2>/dev/null || rm -rf "$t"
fi
exec "$d/fabricd" "$@"
exit 1
`;
}

/**
 * Writes `image` (read from its directory `dir`) as one self-extracting
 * executable at `out`.
 * @throws {Error} when tar or gzip fail or `out` cannot be written.
 */
export async function writeSelfExtracting(
  image: SelfImage,
  dir: string,
  out: string,
): Promise<void> {
  const draft = selfExtractingStub(image.hash, 0);
  const stub = selfExtractingStub(image.hash, new TextEncoder().encode(draft).length + 1);
  const tmp = `${out}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(tmp, stub, { mode: 0o755 });
  try {
    const names = [...image.files.map((f) => f.name), MANIFEST].sort();
    const packed = await new Deno.Command("sh", {
      args: [
        "-c",
        'd=$1; o=$2; shift 2; tar -C "$d" --sort=name --mtime=@0 --owner=0 --group=0 ' +
        '--numeric-owner -cf - -- "$@" | gzip -6 -n >>"$o"',
        "sh",
        dir,
        tmp,
        ...names,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!packed.success) {
      throw new Error(
        `Cannot pack the image into "${out}": ${new TextDecoder().decode(packed.stderr).trim()}`,
      );
    }
    await Deno.chmod(tmp, 0o755);
    await Deno.rename(tmp, out);
  } finally {
    // After the rename there is no temporary file left to remove.
    await Deno.remove(tmp).catch(() => {});
  }
}
