/**
 * The audit lines a test's services log: the `audit` log category sent to
 * memory (undo with logtape's `reset()`).
 * @module
 */
import { configure, type LogRecord } from "@logtape/logtape";

/** Sends the `audit` category to the returned array, from now on. */
export async function captureAuditLines(): Promise<LogRecord[]> {
  const lines: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record) => lines.push(record) },
    loggers: [
      { category: ["fabricd", "audit"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "fatal", sinks: [] },
    ],
  });
  return lines;
}
