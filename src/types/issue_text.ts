/**
 * The words of a validation issue as fabricd's 400 answers give them
 * (`Invalid field "PATH": WORDS`, docs/protocol.md 5.1): the validator's own,
 * except for a required field that is missing, which reads `required: give
 * WHAT` (e.g. `required: give a string`, `required: give any JSON value`)
 * rather than the validator's `Invalid input` or `expected string, received
 * undefined`.
 * @module
 */
import type * as z from "zod";

/** One issue of a failed parse. */
type Issue = z.core.$ZodIssue;

/** What `z.json()` accepts, as its union's branches name it. */
const JSON_KINDS = ["array", "boolean", "null", "number", "record", "string"];

/**
 * The words for `issue` of a parse of `input`: `required: give WHAT` when the
 * field it names is missing from `input` and the issue is about its type or
 * value (not a check of its own, whose words are kept), else the issue's
 * message.
 */
export function issueText(issue: Issue, input: unknown): string {
  if (!isMissing(issue.path, input)) return issue.message;
  if (!["invalid_type", "invalid_union", "invalid_value"].includes(issue.code)) {
    return issue.message;
  }
  const what = expectation(issue);
  return what ? `required: give ${what}` : "required";
}

/** Whether the field at `path` is absent from the object that should hold it. */
function isMissing(path: readonly PropertyKey[], input: unknown): boolean {
  if (path.length === 0) return false;
  let parent = input;
  for (const key of path.slice(0, -1)) {
    if (parent === null || typeof parent !== "object") return false;
    parent = (parent as Record<PropertyKey, unknown>)[key];
  }
  if (parent === null || typeof parent !== "object" || Array.isArray(parent)) return false;
  const key = path[path.length - 1]!;
  return !Object.hasOwn(parent, key) || (parent as Record<PropertyKey, unknown>)[key] === undefined;
}

/** What the field must be, in words, or undefined when the issue does not say. */
function expectation(issue: Issue): string | undefined {
  if (issue.code === "invalid_type") return kindName(issue.expected);
  if (issue.code === "invalid_value") {
    const values = issue.values.map((v) => JSON.stringify(v));
    return values.length === 1 ? values[0] : `one of ${values.join(", ")}`;
  }
  if (issue.code !== "invalid_union") return undefined;
  const kinds = issue.errors.map((branch) => {
    const first = branch[0];
    return first?.code === "invalid_type" && first.path.length === 0 ? first.expected : undefined;
  });
  if (kinds.length === 0 || kinds.some((k) => k === undefined)) return undefined;
  const distinct = [...new Set(kinds as string[])].sort();
  if (JSON_KINDS.every((k) => distinct.includes(k))) return "any JSON value";
  return distinct.map(kindName).join(" or ");
}

/** A type as the validator names it, in words: `a string`, `an object`, `null`. */
function kindName(kind: string): string {
  if (kind === "null" || kind === "undefined") return kind;
  const name = kind === "record" ? "object" : kind;
  return /^[aeiou]/.test(name) ? `an ${name}` : `a ${name}`;
}
