/**
 * One structured logger for the whole program (STYLE.md rule 10).
 *
 * Services write JSON lines to standard error, which their launcher sends to the
 * per-service log file; commands write short text lines to standard error.
 * @module
 */
import {
  configure,
  drain,
  getLogger,
  getStreamSink,
  getTextFormatter,
  jsonLinesFormatter,
  type Logger,
  type LogLevel,
} from "@logtape/logtape";

/** Options of {@linkcode setupLogging}. */
export interface LoggingOptions {
  /** "json" for services (machine-readable), "text" for commands. Default "text". */
  format?: "json" | "text";
  /** Lowest level written. Default "info"; `FABRIC_LOG_LEVEL` overrides it. */
  level?: LogLevel;
}

const LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warning", "error", "fatal"];

/**
 * Configures the process-wide logger once; later calls are ignored.
 *
 * A bad `FABRIC_LOG_LEVEL` falls back to the given level.
 */
export async function setupLogging(options: LoggingOptions = {}): Promise<void> {
  if (configured) return;
  configured = true;
  const fromEnv = Deno.env.get("FABRIC_LOG_LEVEL") as LogLevel | undefined;
  const level = fromEnv && LEVELS.includes(fromEnv) ? fromEnv : options.level ?? "info";
  const formatter = options.format === "json"
    ? jsonLinesFormatter
    : getTextFormatter({ timestamp: "time" });
  await configure({
    sinks: { stderr: getStreamSink(Deno.stderr.writable, { formatter }) },
    loggers: [
      { category: ["fabricd"], lowestLevel: level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: ["stderr"] },
    ],
  });
}

let configured = false;

/**
 * Writes out every log line still buffered. Call it before the process exits:
 * `Deno.exit` drops what the sink has not written, which would lose a
 * service's last words (why it cannot listen, why it gives up).
 */
export async function flushLogs(): Promise<void> {
  if (!configured) return;
  // A sink that cannot write has nowhere to say so: nothing more to do.
  await drain().catch(() => {});
}

/** The logger of one part of fabricd, e.g. `log("registry")`. */
export function log(part: string): Logger {
  return getLogger(["fabricd", part]);
}
