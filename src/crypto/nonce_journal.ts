/**
 * The nonces a service accepted, kept in two small files beside its state so
 * that the next process of the same service (restarted after a crash, even a
 * SIGKILL) refuses them too: without it a restart would be a replay window
 * (docs/protocol.md 2.9).
 *
 * @module
 */
import { join } from "../base/paths.ts";
import type { NonceSink, NonceWindow } from "./replay_cache.ts";

/** Options of {@linkcode NonceJournal.open}. */
export interface NonceJournalOptions {
  /**
   * How long a nonce can stay valid after it was written, ms: the longest
   * lifetime plus twice the clock skew. Each file is written for this long,
   * then the other one is emptied and written. Default 70 000.
   */
  holdMs?: number;
  /** The clock, ms since the epoch. Default `Date.now`. */
  now?: () => number;
}

const LINE = /^([A-Za-z0-9_-]{16,128}) (\d{1,16}) (\d{1,16})$/;

/**
 * An append-only record of accepted nonces in `DIR/NAME.0` and `DIR/NAME.1`
 * (mode 0600). One line per nonce: `NONCE CREATED_MS EXPIRES_MS`. A write
 * goes to the kernel at once (no buffer in the process), so a killed process
 * loses nothing; a crash of the machine may lose the last writes, which the
 * start-time bound of the next process covers.
 */
export class NonceJournal implements NonceSink {
  readonly #paths: [string, string];
  readonly #holdMs: number;
  readonly #now: () => number;
  readonly #loaded: [string, NonceWindow][];
  #current = 0;
  #file: Deno.FsFile;
  #openedAt: number;
  #encoder = new TextEncoder();

  private constructor(
    paths: [string, string],
    state: {
      file: Deno.FsFile;
      loaded: [string, NonceWindow][];
      holdMs: number;
      now: () => number;
    },
  ) {
    this.#paths = paths;
    this.#file = state.file;
    this.#loaded = state.loaded;
    this.#holdMs = state.holdMs;
    this.#now = state.now;
    this.#openedAt = state.now();
  }

  /**
   * Opens the journal of one service: reads what an earlier process left
   * (see {@linkcode NonceJournal.loaded}), keeps the nonces still valid and
   * starts writing.
   *
   * @param dir The directory (made 0700 when missing).
   * @param name The service ID.
   * @param options `holdMs` and the clock.
   * @throws {Error} When the directory or the files cannot be made.
   */
  static async open(
    dir: string,
    name: string,
    options: NonceJournalOptions = {},
  ): Promise<NonceJournal> {
    const { holdMs = 70_000, now = Date.now } = options;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) {
      throw new TypeError(`Nonce journal name must be a service ID, got "${name}"`);
    }
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const paths: [string, string] = [join(dir, `${name}.0`), join(dir, `${name}.1`)];
    const at = now();
    const loaded: [string, NonceWindow][] = [];
    for (const path of paths) {
      const text = await Deno.readTextFile(path).catch(() => "");
      for (const line of text.split("\n")) {
        const match = LINE.exec(line);
        if (!match) continue;
        const window = { created: Number(match[2]), expiresAt: Number(match[3]) };
        if (window.expiresAt > at) loaded.push([match[1]!, window]);
      }
    }
    const file = await Deno.open(paths[0], {
      write: true,
      create: true,
      truncate: true,
      mode: 0o600,
    });
    await Deno.writeTextFile(paths[1], "", { mode: 0o600 });
    const journal = new NonceJournal(paths, { file, loaded, holdMs, now });
    for (const [nonce, window] of loaded) journal.append(nonce, window);
    return journal;
  }

  /** The nonces an earlier process accepted that are still valid. */
  get loaded(): readonly [string, NonceWindow][] {
    return this.#loaded;
  }

  /** Writes one nonce; a failed write is dropped (the start-time bound still holds). */
  append(nonce: string, window: NonceWindow): void {
    try {
      if (this.#now() - this.#openedAt >= this.#holdMs) this.#rotate();
      const line = `${nonce} ${Math.trunc(window.created)} ${Math.trunc(window.expiresAt)}\n`;
      const bytes = this.#encoder.encode(line);
      let written = 0;
      while (written < bytes.length) written += this.#file.writeSync(bytes.subarray(written));
    } catch {
      // A full disk must not stop the service; the bound on `created` remains.
    }
  }

  /** Closes the open file; the journal stays on disk for the next process. */
  close(): void {
    try {
      this.#file.close();
    } catch {
      // Already closed.
    }
  }

  #rotate(): void {
    // Everything in the other file was written more than holdMs ago: expired.
    this.#current = 1 - this.#current;
    const next = Deno.openSync(this.#paths[this.#current]!, {
      write: true,
      create: true,
      truncate: true,
      mode: 0o600,
    });
    this.#file.close();
    this.#file = next;
    this.#openedAt = this.#now();
  }
}
