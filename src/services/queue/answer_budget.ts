/**
 * How much one get's answer holds: a get on a queue of large messages with
 * `max=100` would otherwise build an answer of 100 payloads, on the HTTP
 * route and on a socket alike. The messages past the budget stay ready,
 * untouched, for the next get.
 * @module
 */

/**
 * Characters of payload JSON one get's answer holds at most (4 Mi: 4 MiB of
 * ASCII): messages past it stay ready for the next get, untouched; the first
 * message is always handed out, whatever its size.
 */
export const MAX_ANSWER_CHARS = 4 * 1024 * 1024;

/**
 * What an answer may still hold: a get subtracts the characters of the
 * payloads it hands out, so gets that share one answer (a socket's batch)
 * share one budget.
 */
export interface AnswerBudget {
  /** Characters of payload JSON still allowed; 0 or less: the answer is full. */
  chars: number;
}

/**
 * Sorts `rows`, just taken, by ID and keeps the first and the next ones
 * while their payloads fit in `budget`, which is charged for them; `giveBack`
 * is called with the ID of each one left out (only past the budget, so the
 * usual get pays one addition and one comparison per message).
 * @returns `rows`, cut to the messages kept.
 */
export function fitAnswer<T extends { id: number; payload: string }>(
  rows: T[],
  budget: AnswerBudget,
  giveBack: (id: number) => void,
): T[] {
  rows.sort((a, b) => a.id - b.id);
  let chars = 0;
  for (let i = 0; i < rows.length; i++) {
    const next = chars + rows[i]!.payload.length;
    if (next > budget.chars && i > 0) {
      for (const row of rows.slice(i)) giveBack(row.id);
      rows.length = i;
      break;
    }
    chars = next;
  }
  budget.chars -= chars;
  return rows;
}
