/**
 * The last N bytes of a stream of chunks, without keeping the rest.
 * @module
 */

/** Keeps the last `limit` bytes written to it. */
export class Tail {
  #limit: number;
  #chunks: Uint8Array[] = [];
  #size = 0;

  /** A tail of at most `limit` bytes. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Appends `chunk`, dropping the oldest bytes beyond the limit. */
  write(chunk: Uint8Array): void {
    if (this.#limit <= 0 || chunk.byteLength === 0) return;
    const kept = chunk.byteLength > this.#limit ? chunk.slice(-this.#limit) : chunk.slice();
    this.#chunks.push(kept);
    this.#size += kept.byteLength;
    while (this.#size > this.#limit) {
      const first = this.#chunks[0]!;
      const excess = this.#size - this.#limit;
      if (first.byteLength <= excess) {
        this.#chunks.shift();
        this.#size -= first.byteLength;
      } else {
        this.#chunks[0] = first.subarray(excess);
        this.#size -= excess;
      }
    }
  }

  /** The kept bytes as text; a character cut at the start reads as U+FFFD. */
  text(): string {
    const all = new Uint8Array(this.#size);
    let at = 0;
    for (const chunk of this.#chunks) {
      all.set(chunk, at);
      at += chunk.byteLength;
    }
    return new TextDecoder().decode(all);
  }
}
