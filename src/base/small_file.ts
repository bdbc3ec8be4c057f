/**
 * Reading a small file that a user names (a fabric file, a key file) without
 * trusting what is at the path: a FIFO would block the reader forever, a
 * device or a huge file fill its memory.
 * @module
 */

/** Why {@linkcode readSmallFile} did not read a file. */
export class SmallFileError extends Error {
  /** The path given. */
  readonly path: string;
  /** What is wrong: a directory, another kind of file, or too large. */
  readonly kind: "directory" | "not-regular" | "too-large";
  /** The problem as words that follow the file's name, e.g. `is a directory`. */
  readonly problem: string;
  /** Builds the error. */
  constructor(path: string, kind: SmallFileError["kind"], problem: string) {
    super(`${JSON.stringify(path)} ${problem}`);
    this.name = "SmallFileError";
    this.path = path;
    this.kind = kind;
    this.problem = problem;
  }
}

/**
 * The text of the file at `path` (symbolic links followed), read only when it
 * is a regular file of at most `maxBytes`, and bounded again while it is read
 * (it may grow after the check).
 * @throws {SmallFileError} for a directory, another non-regular file or a larger file.
 * @throws {Deno.errors.NotFound} and the other errors `stat` and `open` report.
 */
export async function readSmallFile(path: string, maxBytes: number): Promise<string> {
  const info = await Deno.stat(path);
  if (info.isDirectory) throw new SmallFileError(path, "directory", "is a directory");
  if (!info.isFile) {
    throw new SmallFileError(path, "not-regular", `is not a regular file (${kindOf(info)})`);
  }
  const tooLarge = () =>
    new SmallFileError(path, "too-large", `is larger than ${sizeText(maxBytes)}`);
  if (info.size > maxBytes) throw tooLarge();
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(maxBytes + 1);
  let length = 0;
  while (length < buffer.length) {
    const read = await file.read(buffer.subarray(length));
    if (read === null) break;
    length += read;
  }
  if (length > maxBytes) throw tooLarge();
  return new TextDecoder().decode(buffer.subarray(0, length));
}

/** What a file that is not a regular file or a directory is, for messages. */
function kindOf(info: Deno.FileInfo): string {
  if (info.isFifo) return "a FIFO";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isSocket) return "a socket";
  return "not a file";
}

/** `bytes` as MiB or KiB when it is a whole number of them. */
function sizeText(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}
