/**
 * A subscriber's bounded outbox: a ring of frames that drops its oldest
 * entries when it holds too many frames or too many bytes.
 * @module
 */

/** One serialized frame, shared by every subscriber that receives it. */
export interface Frame {
  /** The text sent on the socket. */
  readonly text: string;
  /** Its UTF-8 size in bytes. */
  readonly bytes: number;
}

/** A bounded first-in first-out queue of frames that drops the oldest when full. */
export class Outbox {
  #ring: (Frame | undefined)[];
  #head = 0;
  #length = 0;
  #bytes = 0;
  #maxBytes: number;

  /** An outbox of at most `capacity` frames and `maxBytes` bytes. */
  constructor(capacity: number, maxBytes: number) {
    this.#ring = new Array<Frame | undefined>(capacity);
    this.#maxBytes = maxBytes;
  }

  /** Frames waiting. */
  get length(): number {
    return this.#length;
  }

  /** Bytes waiting. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Appends `frame`; returns how many of the oldest frames were dropped to make room. */
  push(frame: Frame): number {
    let dropped = 0;
    while (
      this.#length > 0 &&
      (this.#length === this.#ring.length || this.#bytes + frame.bytes > this.#maxBytes)
    ) {
      this.shift();
      dropped++;
    }
    this.#ring[(this.#head + this.#length) % this.#ring.length] = frame;
    this.#length++;
    this.#bytes += frame.bytes;
    return dropped;
  }

  /** Removes and returns the oldest frame, or undefined when empty. */
  shift(): Frame | undefined {
    if (this.#length === 0) return undefined;
    const frame = this.#ring[this.#head]!;
    this.#ring[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#ring.length;
    this.#length--;
    this.#bytes -= frame.bytes;
    return frame;
  }

  /** Forgets every frame. */
  clear(): void {
    this.#ring.fill(undefined);
    this.#head = 0;
    this.#length = 0;
    this.#bytes = 0;
  }
}
