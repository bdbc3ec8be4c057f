/**
 * The agent's task directories: each task runs in `ROOT/<task-id>/` (its
 * working directory unless the task names one), with its output in `stdout`
 * and `stderr` there. Bounded twice: a task keeps at most `maxBytes` of
 * output (both files together; later bytes are dropped and a `truncated`
 * file says so), and the agent keeps at most `keep` task directories (the
 * oldest finished ones go first). `read()` serves the files to
 * `GET /v1/agent/tasks/ID/logs` (docs/services.md "### Task directories").
 * @module
 */
import { join } from "../../base/paths.ts";
import { TASK_ID } from "../../types/queue_wire.ts";

/** Options of {@linkcode TaskSandbox}. */
export interface TaskSandboxOptions {
  /** Bytes of stdout and stderr one task keeps, together. Default 10 MiB. */
  maxBytes?: number;
  /** Task directories kept, the running ones included. Default 100. */
  keep?: number;
}

/** One of a task's output files. */
export type OutputStream = "stdout" | "stderr";

/** A piece of an output file, as {@linkcode TaskSandbox.read} answers it. */
export interface OutputPiece {
  /** Whole UTF-8 characters (bytes that are not UTF-8 read as U+FFFD). */
  data: string;
  /** Offset of the byte after `data`. */
  next: number;
  /** The file's size now. */
  size: number;
  /** Whether output was dropped because the task reached `maxBytes`. */
  truncated: boolean;
}

/** Default bytes of output one task keeps. */
export const DEFAULT_OUTPUT_BYTES = 10 * 1024 * 1024;

/** Default task directories kept. */
export const DEFAULT_KEPT_TASKS = 100;

const TRUNCATED = "truncated";

/**
 * The output files of one task while it runs. Each file is made when its
 * first byte comes: a task that writes nothing costs no file (two creates
 * and two deletes fewer per task).
 */
export class TaskOutput {
  /** The task's directory. */
  readonly dir: string;
  #files: Partial<Record<OutputStream, Deno.FsFile>> = {};
  #left: number;
  #truncated = false;
  #closed = false;
  #onClose: () => void;

  /** Output into files in `dir`, at most `maxBytes`; `onClose` runs once on close. */
  constructor(dir: string, limits: { maxBytes: number; onClose: () => void }) {
    this.dir = dir;
    this.#left = limits.maxBytes;
    this.#onClose = limits.onClose;
  }

  /** Whether bytes were dropped at the cap. */
  get truncated(): boolean {
    return this.#truncated;
  }

  /**
   * Appends `chunk` to `stream`'s file while the task's budget lasts; the
   * rest is dropped and the directory marked truncated. Never throws: output
   * that cannot be written (full disk) is dropped like output over the cap.
   */
  async write(stream: OutputStream, chunk: Uint8Array): Promise<void> {
    const kept = chunk.byteLength <= this.#left ? chunk : chunk.subarray(0, this.#left);
    this.#left -= kept.byteLength;
    try {
      let at = 0;
      if (at < kept.byteLength) {
        const file = this.#fileOf(stream);
        while (at < kept.byteLength) at += await file.write(kept.subarray(at));
      }
    } catch {
      this.#left = 0;
    }
    if (kept.byteLength < chunk.byteLength && !this.#truncated) {
      this.#truncated = true;
      await Deno.writeTextFile(join(this.dir, TRUNCATED), "").catch(() => {});
    }
  }

  /** The file of `stream`, made on first use. @throws {Error} when it cannot be made. */
  #fileOf(stream: OutputStream): Deno.FsFile {
    if (this.#closed) throw new Error("The task's output is closed");
    return this.#files[stream] ??= Deno.openSync(join(this.dir, stream), {
      write: true,
      create: true,
      truncate: true,
      mode: 0o600,
    });
  }

  /** Closes the files; idempotent. */
  close(): void {
    this.#closed = true;
    for (const file of Object.values(this.#files)) {
      try {
        file.close();
      } catch {
        // Closed already.
      }
    }
    this.#onClose();
    this.#onClose = () => {};
  }
}

/** The task directories of one agent, under `root`. */
export class TaskSandbox {
  /** The directory that holds one directory per task. */
  readonly root: string;
  #maxBytes: number;
  #keep: number;
  #open = new Set<string>();
  /** This agent's task directories, oldest first: listed from disk once, then kept here. */
  #known: Map<string, number> | null = null;
  /** Directories being pruned, by task ID. */
  #removing = new Map<string, Promise<void>>();

  /**
   * Task directories under `root` (created when needed).
   * @throws {RangeError} when `maxBytes` or `keep` is not a whole number of 1 or more.
   */
  constructor(root: string, options: TaskSandboxOptions = {}) {
    this.root = root;
    this.#maxBytes = options.maxBytes ?? DEFAULT_OUTPUT_BYTES;
    this.#keep = options.keep ?? DEFAULT_KEPT_TASKS;
    for (const [name, value] of [["maxBytes", this.#maxBytes], ["keep", this.#keep]] as const) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(`Invalid sandbox ${name} ${value}: give a whole number, 1 or more`);
      }
    }
  }

  /** The directory of task `id`. @throws {TypeError} when `id` is not a task ID. */
  dirOf(id: string): string {
    // A task ID has no '/' or '.', so the path stays under the root.
    if (!TASK_ID.test(id)) throw new TypeError(`Invalid task ID "${id}"`);
    return join(this.root, id);
  }

  /**
   * Makes task `id`'s directory afresh (a task run again starts with empty
   * files) and starts removing the oldest directories beyond `keep`. The
   * removals are not waited for: on a busy disk one takes a millisecond or
   * more, which no task should wait for ({@linkcode TaskSandbox.pruned}).
   * @throws {Error} when the directory cannot be made.
   */
  async open(id: string): Promise<TaskOutput> {
    const dir = this.dirOf(id);
    this.#open.add(id);
    try {
      const known = this.#known ??= this.#scan();
      // An earlier run's directory, being pruned or still there, goes first.
      await this.#removing.get(id);
      if (known.delete(id)) await removeDir(dir);
      this.#prune(this.#keep - 1);
      await this.#makeDir(dir);
      known.set(id, Date.now());
      return new TaskOutput(dir, {
        maxBytes: this.#maxBytes,
        onClose: () => this.#open.delete(id),
      });
    } catch (error) {
      this.#open.delete(id);
      throw error;
    }
  }

  /** Resolves once the directories being pruned are gone (or could not be removed). */
  async pruned(): Promise<void> {
    while (this.#removing.size > 0) await Promise.all(this.#removing.values());
  }

  /**
   * Makes `dir` empty: anew, or again when something else made it since the
   * listing. The usual case is one synchronous mkdir: on the event loop it
   * costs less than a round trip through Deno's blocking-task threads (15-30
   * against 60-85 µs of CPU, 2,000 of each in a loop).
   */
  async #makeDir(dir: string): Promise<void> {
    try {
      Deno.mkdirSync(dir, { mode: 0o700 });
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) await removeDir(dir);
      else if (error instanceof Deno.errors.NotFound) {
        await Deno.mkdir(this.root, { recursive: true, mode: 0o700 });
      } else throw error;
      await Deno.mkdir(dir, { mode: 0o700 });
    }
  }

  /**
   * Up to `max` bytes of task `id`'s `stream` from `offset`, cut back to a
   * whole UTF-8 character when one is split at the end.
   * @returns null when the agent keeps no directory for the task.
   */
  async read(
    id: string,
    piece: { stream: OutputStream; offset: number; max: number },
  ): Promise<OutputPiece | null> {
    const dir = this.dirOf(id);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(join(dir, piece.stream), { read: true });
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      // A file is made with its first byte: a directory without it holds no output yet.
      const made = await Deno.stat(dir).then((info) => info.isDirectory, () => false);
      return made
        ? { data: "", next: 0, size: 0, truncated: await isFile(join(dir, TRUNCATED)) }
        : null;
    }
    try {
      const size = (await file.stat()).size;
      const truncated = await isFile(join(dir, TRUNCATED));
      const offset = Math.min(piece.offset, size);
      const buffer = new Uint8Array(Math.min(piece.max, size - offset));
      await file.seek(offset, Deno.SeekMode.Start);
      let got = 0;
      while (got < buffer.byteLength) {
        const n = await file.read(buffer.subarray(got));
        if (n === null) break;
        got += n;
      }
      const whole = wholeCharacters(buffer.subarray(0, got));
      return {
        data: new TextDecoder().decode(whole),
        next: offset + whole.byteLength,
        size,
        truncated,
      };
    } finally {
      file.close();
    }
  }

  /**
   * Removes the oldest task directories not in use, keeping at most `keep`.
   * The directories are listed from disk once (a restarted agent finds its
   * predecessor's); after that this agent's own list, oldest first, is kept
   * in memory, so a task costs no directory scan.
   */
  #prune(keep: number): void {
    const known = this.#known ??= this.#scan();
    let excess = known.size - keep;
    for (const name of [...known.keys()]) {
      if (excess <= 0) break;
      if (this.#open.has(name)) continue;
      known.delete(name);
      const removed = removeDir(join(this.root, name)).finally(() => {
        if (this.#removing.get(name) === removed) this.#removing.delete(name);
      });
      this.#removing.set(name, removed);
      excess--;
    }
  }

  /** The task directories on disk, oldest first; makes the root when it is missing. */
  #scan(): Map<string, number> {
    const dirs: { name: string; at: number }[] = [];
    Deno.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    for (const entry of Deno.readDirSync(this.root)) {
      if (!entry.isDirectory || !TASK_ID.test(entry.name)) continue;
      let at = 0;
      try {
        at = Deno.statSync(join(this.root, entry.name)).mtime?.getTime() ?? 0;
      } catch {
        // Gone meanwhile: oldest.
      }
      dirs.push({ name: entry.name, at });
    }
    dirs.sort((a, b) => a.at - b.at);
    return new Map(dirs.map((d) => [d.name, d.at]));
  }
}

function isFile(path: string): Promise<boolean> {
  return Deno.stat(path).then(() => true, () => false);
}

/** Removes `dir` and what it holds; never rejects (gone already is as good as removed). */
async function removeDir(dir: string): Promise<void> {
  try {
    await Deno.remove(dir, { recursive: true });
  } catch {
    // Gone, or cannot be removed: making it afresh says so.
  }
}

/**
 * `bytes` without a UTF-8 sequence cut at its end, unless that would leave
 * nothing (then the bytes as they are: they are not UTF-8, or all there is).
 */
function wholeCharacters(bytes: Uint8Array): Uint8Array {
  for (let back = 1; back <= Math.min(3, bytes.byteLength); back++) {
    const byte = bytes[bytes.byteLength - back]!;
    if ((byte & 0xc0) === 0x80) continue;
    const needed = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    const cut = bytes.byteLength - back;
    return needed > back && cut > 0 ? bytes.subarray(0, cut) : bytes;
  }
  return bytes;
}
