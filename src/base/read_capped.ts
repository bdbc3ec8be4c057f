/**
 * Reading an answer's body up to a bound: a process that took a fabric
 * service's port (it died, another local user bound the port first) can
 * answer with a body that never ends, and a client that reads answers whole
 * would grow until the host runs out of memory.
 * @module
 */

/** What {@linkcode readCapped} read. */
export interface CappedBody {
  /** The body, or its first `maxBytes` bytes when it is longer. */
  bytes: Uint8Array;
  /** False when the body is longer than `maxBytes`: `bytes` is only its start. */
  whole: boolean;
}

/**
 * Reads `answer`'s body a chunk at a time and stops at `maxBytes`: the rest
 * is never read (the body is cancelled). A `Content-Length` over `maxBytes`
 * is refused before anything is read. `signal` ends the read early (the body
 * is cancelled) and throws its reason.
 * @throws {unknown} what reading the body throws (the fetch's signal aborting
 * it), or `signal`'s reason.
 */
export async function readCapped(
  answer: Response,
  maxBytes: number,
  signal?: AbortSignal,
): Promise<CappedBody> {
  if (Number(answer.headers.get("content-length")) > maxBytes) {
    await answer.body?.cancel().catch(() => {});
    return { bytes: new Uint8Array(), whole: false };
  }
  if (!answer.body) return { bytes: new Uint8Array(), whole: true };
  const reader = answer.body.getReader();
  const stop = (): void => void reader.cancel().catch(() => {});
  signal?.addEventListener("abort", stop, { once: true });
  const chunks: Uint8Array[] = [];
  let size = 0;
  let whole = true;
  try {
    while (true) {
      signal?.throwIfAborted();
      const { done, value } = await reader.read();
      // A cancel on abort ends the read as if the body had ended.
      signal?.throwIfAborted();
      if (done) break;
      if (size + value.byteLength > maxBytes) {
        chunks.push(value.subarray(0, maxBytes - size));
        size = maxBytes;
        whole = false;
        break;
      }
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    signal?.removeEventListener("abort", stop);
    // Stops the transfer when the bound cut it short; a body already ended is fine.
    await reader.cancel().catch(() => {});
  }
  return { bytes: joined(chunks, size), whole };
}

function joined(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}
