/**
 * Work over many items with a bound on how much runs at once.
 * @module
 */

/**
 * Calls `visit` on every item of `items` and its index, taken in order, with at most
 * `atOnce` calls running at a time (at least one); resolves once every call
 * has ended. The first call that rejects rejects the whole at once, while the
 * calls already running end on their own and the items left are still
 * visited; a `visit` whose errors must not end the whole catches them.
 */
export async function eachAtMost<T>(
  items: readonly T[],
  atOnce: number,
  visit: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) await visit(items[i]!, i);
  };
  const workers = Math.max(1, Math.min(atOnce, items.length));
  await Promise.all(Array.from({ length: workers }, worker));
}
