/**
 * HMAC-SHA256 (RFC 2104) for the MAC sessions' signatures, from hash states
 * worked out once per key.
 * @module
 */
import { absorb, finishFrom, type Midstate, sha256 } from "./_sha256.ts";
import { toBase64, utf8Scratch } from "./_bytes.ts";

const BLOCK = 64;
/** Leading parts of messages remembered per key. */
const REMEMBERED = 4;

/** What is kept with a key: its padded states (RFC 2104) and its messages' recent beginnings. */
interface KeyStates {
  inner: Midstate;
  outer: Midstate;
  /** Newest first: the inner hash after a message's leading whole blocks. */
  recent: { prefix: string; state: Midstate }[];
}

const states = new WeakMap<Uint8Array, KeyStates>();

function keyStates(key: Uint8Array): KeyStates {
  let known = states.get(key);
  if (known === undefined) {
    // RFC 2104: a key longer than a block is hashed first.
    const short = key.length > BLOCK ? sha256(key) : key;
    const pad = (byte: number): Midstate => {
      const block = new Uint8Array(BLOCK).fill(byte);
      for (let i = 0; i < short.length; i++) block[i] = short[i]! ^ byte;
      return absorb(block);
    };
    known = { inner: pad(0x36), outer: pad(0x5c), recent: [] };
    states.set(key, known);
  }
  return known;
}

/**
 * The inner hash of `known` after the whole blocks of `bytes` (the UTF-8 of
 * `message`) within its first `stable` characters, and how many bytes that
 * is. Messages signed with one key often begin alike (a signature base's
 * covered components, then its parameters up to the time): their leading
 * blocks are hashed once and kept, keyed by their exact text, and the few
 * last kept. Only ASCII messages, whose characters are their bytes.
 */
function innerStart(
  known: KeyStates,
  input: { message: string; bytes: Uint8Array; stable: number },
): { state: Midstate; offset: number } {
  const { message, bytes, stable } = input;
  const offset = bytes.length === message.length
    ? Math.min(stable, message.length) - (Math.min(stable, message.length) % BLOCK)
    : 0;
  if (offset === 0) return { state: known.inner, offset };
  const prefix = message.slice(0, offset);
  const recent = known.recent;
  let hit = recent.find((entry) => entry.prefix === prefix);
  if (hit === undefined) {
    hit = { prefix, state: absorb(bytes.subarray(0, offset), known.inner) };
    if (recent.unshift(hit) > REMEMBERED) recent.pop();
  }
  return { state: hit.state, offset };
}

const innerDigest = new Uint8Array(32);
const MAC = new Uint8Array(32);

/**
 * Computes HMAC-SHA256 of the UTF-8 bytes of `message` under `key` into
 * `MAC`, all in JavaScript (`_sha256.ts`): no op, hash object or `Buffer`
 * per call. The key's padded states are kept (weakly) with the key object,
 * so a key used for many MACs, as a session's secret is, costs its
 * message's blocks and one more per MAC, fewer when the message begins as a
 * recent one did. The key bytes must not change afterwards.
 */
function hmacInto(key: Uint8Array, message: string, stable: number): void {
  const known = keyStates(key);
  const bytes = utf8Scratch(message);
  const { state, offset } = innerStart(known, { message, bytes, stable });
  finishFrom(state, offset === 0 ? bytes : bytes.subarray(offset), innerDigest);
  finishFrom(known.outer, innerDigest, MAC);
}

/** A message to authenticate, and how many of its first characters other messages likely share. */
export interface MacInput {
  /** The text (a signature base), authenticated as its UTF-8 bytes. */
  message: string;
  /** A hint: the length of its beginning that recent messages share. Default 0. */
  stable?: number;
}

/**
 * HMAC-SHA256 (RFC 2104) of `input.message` under `key`, in standard padded
 * base64: the spelling of a signature in `Signature`.
 *
 * @param key The key; longer than 64 bytes it is hashed first, as RFC 2104 says.
 * @param input The text and, as a hint, how much of it repeats.
 * @returns The 32-byte MAC in base64.
 */
export function hmacSha256Base64(key: Uint8Array, input: MacInput): string {
  hmacInto(key, input.message, input.stable ?? 0);
  return toBase64(MAC);
}

/**
 * HMAC-SHA256 (RFC 2104) of the UTF-8 bytes of `message` under `key`, as 32
 * new bytes.
 */
export function hmacSha256(key: Uint8Array, message: string): Uint8Array<ArrayBuffer> {
  hmacInto(key, message, 0);
  return MAC.slice();
}

/**
 * Whether `mac` is the HMAC-SHA256 of `input.message` under `key`, compared
 * in time that depends on the lengths only.
 *
 * @param key As for {@linkcode hmacSha256Base64}.
 * @param input The text, the hint, and the MAC received.
 */
export function hmacSha256Matches(key: Uint8Array, input: MacInput & { mac: Uint8Array }): boolean {
  hmacInto(key, input.message, input.stable ?? 0);
  if (input.mac.length !== MAC.length) return false;
  let difference = 0;
  for (let i = 0; i < MAC.length; i++) difference |= MAC[i]! ^ input.mac[i]!;
  return difference === 0;
}
