/**
 * SHA-256 (FIPS 180-4) in plain JavaScript, for the short inputs of the
 * signed-request hot path: signature bases (HMAC-SHA256, `_hmac.ts`) and the
 * small bodies of `Content-Digest`. On Deno, node:crypto's hashes cost an op
 * per step plus a byte-by-byte copy of each digest into a `Buffer`, about ten
 * times the compression work for inputs of a few blocks; this costs none of
 * that, and an HMAC key's padded states are two arrays of eight words to keep.
 * Constant time: no branch or index depends on the data.
 *
 * @module
 */

const K = new Int32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

/** The initial hash value H(0). */
const INITIAL = new Int32Array([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);

/** The last 16 words of the message schedule, reused by every call (the module never yields mid-hash). */
const W = new Int32Array(16);

/**
 * One compression: folds the 64-byte block at `offset` of `view` into
 * `state`. The schedule is worked out as the rounds need it, in a ring of 16
 * words, and the block read big-endian through a `DataView`: about a third
 * faster here than a 64-word schedule filled byte by byte first.
 */
function compress(state: Int32Array, view: DataView, offset: number): void {
  for (let t = 0; t < 16; t++) W[t] = view.getInt32(offset + t * 4);
  let a = state[0]!, b = state[1]!, c = state[2]!, d = state[3]!;
  let e = state[4]!, f = state[5]!, g = state[6]!, h = state[7]!;
  for (let t = 0; t < 64; t++) {
    const j = t & 15;
    let w = W[j]!;
    if (t >= 16) {
      const w15 = W[(t + 1) & 15]!;
      const w2 = W[(t + 14) & 15]!;
      const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
      const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
      w = (w + s0 + W[(t + 9) & 15]! + s1) | 0;
      W[j] = w;
    }
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[t]! + w) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = (state[0]! + a) | 0;
  state[1] = (state[1]! + b) | 0;
  state[2] = (state[2]! + c) | 0;
  state[3] = (state[3]! + d) | 0;
  state[4] = (state[4]! + e) | 0;
  state[5] = (state[5]! + f) | 0;
  state[6] = (state[6]! + g) | 0;
  state[7] = (state[7]! + h) | 0;
}

/** A big-endian reader of `bytes`. */
function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The last block(s) of a message, padded; reused like `W`. */
const TAIL = new Uint8Array(128);
const TAIL_VIEW = viewOf(TAIL);

/**
 * Hashes `bytes` on from `state` (a copy of {@linkcode INITIAL} or of a
 * state after whole blocks), where `before` bytes were already hashed, and
 * writes the digest into `out`.
 */
function finish(state: Int32Array, bytes: Uint8Array, before: number, out: Uint8Array): void {
  const whole = bytes.length - (bytes.length % 64);
  if (whole > 0) {
    const view = viewOf(bytes);
    for (let offset = 0; offset < whole; offset += 64) compress(state, view, offset);
  }
  const rest = bytes.length - whole;
  TAIL.fill(0);
  TAIL.set(bytes.subarray(whole));
  TAIL[rest] = 0x80;
  const tailLength = rest < 56 ? 64 : 128;
  const bits = (before + bytes.length) * 8;
  // The length in bits, big-endian in the last 8 bytes (below 2^53: two words).
  const high = Math.floor(bits / 0x1_0000_0000);
  const low = bits >>> 0;
  TAIL[tailLength - 8] = high >>> 24;
  TAIL[tailLength - 7] = high >>> 16;
  TAIL[tailLength - 6] = high >>> 8;
  TAIL[tailLength - 5] = high;
  TAIL[tailLength - 4] = low >>> 24;
  TAIL[tailLength - 3] = low >>> 16;
  TAIL[tailLength - 2] = low >>> 8;
  TAIL[tailLength - 1] = low;
  compress(state, TAIL_VIEW, 0);
  if (tailLength === 128) compress(state, TAIL_VIEW, 64);
  for (let i = 0; i < 8; i++) {
    const word = state[i]!;
    out[i * 4] = word >>> 24;
    out[i * 4 + 1] = word >>> 16;
    out[i * 4 + 2] = word >>> 8;
    out[i * 4 + 3] = word;
  }
}

/** The running state of the hash being computed (the module never yields mid-hash). */
const STATE = new Int32Array(8);

/**
 * The SHA-256 digest of `bytes`.
 *
 * @param bytes The message, at most 2^53 bits.
 * @returns 32 new bytes.
 */
export function sha256(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(32);
  STATE.set(INITIAL);
  finish(STATE, bytes, 0, out);
  return out;
}

/** A hash part way: its state after `hashed` bytes, a whole number of blocks. Never changed. */
export interface Midstate {
  readonly words: Int32Array;
  readonly hashed: number;
}

const START: Midstate = { words: INITIAL, hashed: 0 };

/**
 * The hash after `bytes`, a whole number of 64-byte blocks, from `from`
 * (default: the start): for an HMAC key's padded blocks (RFC 2104) and the
 * leading blocks of messages that often begin alike.
 *
 * @throws {RangeError} If `bytes` is not a whole number of blocks.
 */
export function absorb(bytes: Uint8Array, from: Midstate = START): Midstate {
  if (bytes.length % 64 !== 0) {
    throw new RangeError(`Only whole 64-byte blocks are absorbed, got ${bytes.length} bytes`);
  }
  const words = from.words.slice();
  const view = viewOf(bytes);
  for (let offset = 0; offset < bytes.length; offset += 64) compress(words, view, offset);
  return { words, hashed: from.hashed + bytes.length };
}

/** Finishes the hash begun in `from` (not changed) over `bytes`, into `out` (32 bytes). */
export function finishFrom(from: Midstate, bytes: Uint8Array, out: Uint8Array): void {
  STATE.set(from.words);
  finish(STATE, bytes, from.hashed, out);
}

/**
 * SHA-256 over a message that arrives in pieces (a relayed body): whole
 * blocks are hashed as they come, the rest of a block waits for the next
 * piece. About 170 MB/s in JavaScript here; for the bounded bodies of
 * management requests.
 */
export class Sha256Stream {
  #state: Midstate = START;
  #pending = new Uint8Array(64);
  #filled = 0;

  /** Hashes `bytes` on. */
  update(bytes: Uint8Array): void {
    let at = 0;
    if (this.#filled > 0) {
      at = Math.min(64 - this.#filled, bytes.length);
      this.#pending.set(bytes.subarray(0, at), this.#filled);
      this.#filled += at;
      if (this.#filled < 64) return;
      this.#state = absorb(this.#pending, this.#state);
      this.#filled = 0;
    }
    const whole = at + (bytes.length - at) - ((bytes.length - at) % 64);
    if (whole > at) this.#state = absorb(bytes.subarray(at, whole), this.#state);
    this.#pending.set(bytes.subarray(whole));
    this.#filled = bytes.length - whole;
  }

  /** The digest of everything hashed so far (32 new bytes). */
  digest(): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(32);
    finishFrom(this.#state, this.#pending.subarray(0, this.#filled), out);
    return out;
  }
}
