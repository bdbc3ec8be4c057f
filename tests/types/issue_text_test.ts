import assert from "node:assert/strict";
import * as z from "zod";
import { issueText } from "../../src/types/issue_text.ts";

const schema = z.strictObject({
  name: z.string().refine((s) => s.length > 1, "must be 2 characters or more"),
  count: z.number().int(),
  body: z.json(),
  mode: z.enum(["fast", "slow"]),
  kind: z.literal("job"),
  either: z.union([z.string(), z.number()]),
  inner: z.strictObject({ id: z.string(), tags: z.array(z.string()) }),
});

const FULL = {
  name: "ab",
  count: 1,
  body: null,
  mode: "fast",
  kind: "job",
  either: 1,
  inner: { id: "x", tags: ["a"] },
};

/** The words of the first issue of `input`. */
function words(input: unknown): string {
  const result = schema.safeParse(input);
  assert.ok(!result.success, JSON.stringify(input));
  return issueText(result.error.issues[0]!, input);
}

function without(key: string): Record<string, unknown> {
  const copy: Record<string, unknown> = structuredClone(FULL);
  delete copy[key];
  return copy;
}

Deno.test("issueText() calls a missing field required and says what it must be", () => {
  assert.equal(words(without("name")), "required: give a string");
  assert.equal(words(without("count")), "required: give a number");
  assert.equal(words(without("body")), "required: give any JSON value");
  assert.equal(words(without("mode")), 'required: give one of "fast", "slow"');
  assert.equal(words(without("kind")), 'required: give "job"');
  assert.equal(words(without("either")), "required: give a number or a string");
  assert.equal(words(without("inner")), "required: give an object");
  assert.equal(words({ ...FULL, inner: { tags: [] } }), "required: give a string");
  assert.equal(words({ ...FULL, inner: { id: "x" } }), "required: give an array");
});

Deno.test("issueText() keeps the validator's words for a field that is there", () => {
  assert.equal(words({ ...FULL, name: "a" }), "must be 2 characters or more");
  assert.match(words({ ...FULL, count: "1" }), /expected number, received string/);
  assert.match(words({ ...FULL, mode: "medium" }), /expected one of "fast"\|"slow"/);
  assert.match(words({ ...FULL, inner: { id: "x", tags: [1] } }), /expected string/);
  assert.match(words(null), /expected object, received null/);
  assert.match(words([]), /expected object, received array/);
});
