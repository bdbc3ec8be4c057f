/**
 * Topic names and subscription patterns of the pub/sub role, NATS style.
 *
 * A topic is a dot-separated list of tokens (`tasks.agt-1.done`), each token
 * made of letters, digits, `_` and `-`. A pattern is a topic whose tokens may
 * also be `*` (exactly one token) or, as the last token only, `>` (one or more
 * trailing tokens). Patterns are compiled once; a pattern without wildcards
 * compiles to a plain string comparison.
 * @module
 */

/** Longest topic or pattern accepted, in characters. */
export const MAX_TOPIC_LENGTH = 255;

const TOPIC = /^[a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*$/;
const TOKEN = /^[a-zA-Z0-9_-]+$/;

/** A topic or pattern that does not follow the rules above. */
export class TopicError extends TypeError {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "TopicError";
  }
}

/** Whether `topic` is a valid topic name (no wildcards). */
export function isValidTopic(topic: string): boolean {
  return topic.length <= MAX_TOPIC_LENGTH && TOPIC.test(topic);
}

/** Whether `pattern` is a valid subscription pattern. */
export function isValidPattern(pattern: string): boolean {
  return patternProblem(pattern) === null;
}

/**
 * Checks a topic name.
 * @throws {TopicError} naming the topic and the rule it breaks.
 */
export function assertTopic(topic: string): void {
  if (isValidTopic(topic)) return;
  throw new TopicError(
    `Invalid topic "${clip(topic)}": use 1-${MAX_TOPIC_LENGTH} characters of dot-separated ` +
      `tokens made of letters, digits, '_' and '-' (wildcards only in subscriptions)`,
  );
}

/** A compiled subscription pattern. */
export interface TopicMatcher {
  /** The pattern as given. */
  readonly pattern: string;
  /** True when the pattern has no wildcard and matches exactly one topic. */
  readonly exact: boolean;
  /** Whether the pattern matches `topic` (a valid topic name). */
  matches(topic: string): boolean;
  /** Whether the pattern matches a topic already split at its dots. */
  matchesTokens(tokens: readonly string[]): boolean;
}

/**
 * Compiles a subscription pattern.
 *
 * @example
 * ```ts
 * const m = compilePattern("tasks.*.done");
 * m.matches("tasks.agt-1.done"); // true
 * compilePattern("tasks.>").matches("tasks"); // false: `>` needs one token or more
 * ```
 * @throws {TopicError} when the pattern is not valid, saying why.
 */
export function compilePattern(pattern: string): TopicMatcher {
  const problem = patternProblem(pattern);
  if (problem !== null) throw new TopicError(`Invalid pattern "${clip(pattern)}": ${problem}`);
  const tokens = pattern.split(".");
  if (!tokens.includes("*") && !tokens.includes(">")) {
    return {
      pattern,
      exact: true,
      matches: (topic) => topic === pattern,
      matchesTokens: (t) => t.length === tokens.length && t.every((x, i) => x === tokens[i]),
    };
  }
  const tail = tokens[tokens.length - 1] === ">";
  const fixed = tail ? tokens.slice(0, -1) : tokens;
  const matchesTokens = (t: readonly string[]): boolean => {
    if (tail ? t.length <= fixed.length : t.length !== fixed.length) return false;
    for (let i = 0; i < fixed.length; i++) {
      const want = fixed[i]!;
      if (want !== "*" && want !== t[i]) return false;
    }
    return true;
  };
  return {
    pattern,
    exact: false,
    matches: (topic) => matchesTokens(topic.split(".")),
    matchesTokens,
  };
}

function patternProblem(pattern: string): string | null {
  if (pattern.length === 0 || pattern.length > MAX_TOPIC_LENGTH) {
    return `use 1-${MAX_TOPIC_LENGTH} characters`;
  }
  const tokens = pattern.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token === "*") continue;
    if (token === ">") {
      if (i !== tokens.length - 1) return "'>' may only be the last token";
      continue;
    }
    if (!TOKEN.test(token)) {
      return `token "${
        clip(token)
      }" must be letters, digits, '_' and '-', or a wildcard '*' or '>'`;
    }
  }
  return null;
}

function clip(text: string): string {
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}
