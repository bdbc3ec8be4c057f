import assert from "node:assert/strict";
import fc from "fast-check";
import {
  assertTopic,
  compilePattern,
  isValidPattern,
  isValidTopic,
  TopicError,
} from "../../../src/types/pubsub_topics.ts";

const token = fc.stringMatching(/^[a-zA-Z0-9_-]{1,8}$/);
const tokens = fc.array(token, { minLength: 1, maxLength: 6 });
// A small alphabet, so random patterns and topics often share tokens.
const smallToken = fc.constantFrom("a", "b", "c-1");
const smallTopic = fc.array(smallToken, { minLength: 1, maxLength: 4 });
const smallPattern = fc.tuple(
  fc.array(fc.constantFrom("a", "b", "c-1", "*"), { minLength: 0, maxLength: 4 }),
  fc.boolean(),
).filter(([t, tail]) => t.length > 0 || tail).map(([t, tail]) => tail ? [...t, ">"] : t);

/** A matcher written the slow, obvious way, to compare against. */
function reference(pattern: string[], topic: string[]): boolean {
  if (pattern.length === 0) return topic.length === 0;
  const [head, ...rest] = pattern;
  if (head === ">") return topic.length >= 1;
  if (topic.length === 0) return false;
  if (head !== "*" && head !== topic[0]) return false;
  return reference(rest, topic.slice(1));
}

Deno.test("isValidTopic() accepts dot-separated tokens and refuses wildcards and empty tokens", () => {
  for (const ok of ["a", "tasks.agt-1.done", "A_b-9.x", "1.2.3"]) assert.ok(isValidTopic(ok), ok);
  for (const bad of ["", ".a", "a.", "a..b", "a.*", "a.>", "a b", "a/b", "ä", "x".repeat(256)]) {
    assert.equal(isValidTopic(bad), false, bad);
  }
});

Deno.test("isValidPattern() accepts '*' anywhere and '>' only as the last token", () => {
  for (const ok of ["a", "*", ">", "a.*", "*.b", "a.>", "*.*.>", "tasks.*.done"]) {
    assert.ok(isValidPattern(ok), ok);
  }
  for (const bad of ["", "a.>.b", ">.a", "a.**", "a*", "a.>x", "a..b", "a.", "a b"]) {
    assert.equal(isValidPattern(bad), false, bad);
  }
});

Deno.test("compilePattern() throws a TopicError that names the pattern and the rule", () => {
  assert.throws(() => compilePattern("a.>.b"), (error: unknown) => {
    assert.ok(error instanceof TopicError);
    assert.match(error.message, /"a\.>\.b".*'>' may only be the last token/);
    return true;
  });
  assert.throws(
    () => assertTopic("a.*"),
    /Invalid topic "a\.\*": .*wildcards only in subscriptions/,
  );
});

Deno.test("compilePattern() matches one token with '*' and one or more trailing tokens with '>'", () => {
  const star = compilePattern("tasks.*.done");
  assert.ok(star.matches("tasks.agt-1.done"));
  assert.equal(star.matches("tasks.done"), false);
  assert.equal(star.matches("tasks.a.b.done"), false);
  const tail = compilePattern("tasks.>");
  assert.ok(tail.matches("tasks.a"));
  assert.ok(tail.matches("tasks.a.b.c"));
  assert.equal(tail.matches("tasks"), false);
  assert.equal(tail.matches("other.a"), false);
  assert.ok(compilePattern(">").matches("anything.at.all"));
});

Deno.test("compilePattern() takes the exact fast path for a pattern without wildcards", () => {
  const exact = compilePattern("a.b");
  assert.equal(exact.exact, true);
  assert.ok(exact.matches("a.b"));
  assert.ok(exact.matchesTokens(["a", "b"]));
  assert.equal(exact.matches("a.b.c"), false);
  assert.equal(exact.matchesTokens(["a"]), false);
  assert.equal(compilePattern("a.*").exact, false);
});

Deno.test("compilePattern() matches a topic with any pattern made of its own tokens", () => {
  fc.assert(fc.property(
    tokens,
    fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
    fc.nat(6),
    (topic, stars, cut) => {
      // Replace some tokens by '*', and possibly a non-empty tail by '>'.
      const pattern = topic.map((t, i) => stars[i] ? "*" : t);
      const from = 1 + (cut % topic.length);
      const withTail = from < topic.length ? [...pattern.slice(0, from), ">"] : pattern;
      for (const p of [pattern, withTail]) {
        const matcher = compilePattern(p.join("."));
        assert.ok(matcher.matches(topic.join(".")), `${p.join(".")} ~ ${topic.join(".")}`);
      }
    },
  ));
});

Deno.test("compilePattern() matches every longer topic with the prefix of a '>' pattern", () => {
  fc.assert(fc.property(tokens, tokens, token, (prefix, rest, other) => {
    const matcher = compilePattern([...prefix, ">"].join("."));
    assert.ok(matcher.matches([...prefix, ...rest].join(".")));
    assert.equal(matcher.matches(prefix.join(".")), false, "'>' needs at least one token");
    if (other !== prefix[0]) {
      assert.equal(matcher.matches([other, ...prefix.slice(1), ...rest].join(".")), false);
    }
  }));
});

Deno.test("compilePattern() agrees with a reference matcher on random patterns and topics", () => {
  fc.assert(
    fc.property(smallPattern, smallTopic, (pattern, topic) => {
      const matcher = compilePattern(pattern.join("."));
      assert.equal(matcher.matches(topic.join(".")), reference(pattern, topic));
      assert.equal(matcher.matchesTokens(topic), reference(pattern, topic));
    }),
    { numRuns: 2000 },
  );
});
