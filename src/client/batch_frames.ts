/**
 * The batch frames of the queue's and the pub/sub's sockets, both ways the
 * same: `{"op":"batch","frames":[...]}` around frames that are JSON texts.
 * @module
 */

/**
 * `frames` (JSON texts), in order, packed into batch frames of at most
 * `maxFrames` frames whose texts hold at most `maxChars` characters together;
 * a frame left alone, or too large to share, is sent as itself.
 */
export function batchFrames(
  frames: readonly string[],
  limits: { maxFrames: number; maxChars: number },
): string[] {
  const out: string[] = [];
  let at = 0;
  while (at < frames.length) {
    let count = 0;
    let chars = 0;
    while (at + count < frames.length && count < limits.maxFrames) {
      chars += frames[at + count]!.length;
      if (count > 0 && chars > limits.maxChars) break;
      count++;
    }
    const batch = frames.slice(at, at + count);
    out.push(batch.length === 1 ? batch[0]! : `{"op":"batch","frames":[${batch.join(",")}]}`);
    at += count;
  }
  return out;
}
