import assert from "node:assert/strict";
import { join } from "node:path";
import { followLog, readLogTail } from "../../src/config/log_file.ts";

function line(at: string, message: string): string {
  return JSON.stringify({ "@timestamp": at, level: "INFO", message });
}

Deno.test("readLogTail() answers whole lines, at most maxBytes, and drops lines before since", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "x.log");
    const old = line("2026-01-01T00:00:00.000Z", "old");
    const fresh = line("2026-01-01T00:01:00.000Z", "fresh");
    await Deno.writeTextFile(path, `${old}\n${fresh}\n  a trace line\npartial`);
    const all = await readLogTail(path);
    assert.deepEqual(all.lines, [old, fresh, "  a trace line"]);
    assert.equal(all.truncated, false);
    const since = await readLogTail(path, { since: Date.parse("2026-01-01T00:00:30.000Z") });
    assert.deepEqual(since.lines, [fresh, "  a trace line"]);
    const small = await readLogTail(path, { maxBytes: 30 });
    assert.equal(small.truncated, true);
    assert.deepEqual(small.lines, ["  a trace line"]);
    await assert.rejects(() => readLogTail(join(dir, "none.log")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("followLog() delivers lines appended after the tail, in chunks, until aborted", async () => {
  const dir = await Deno.makeTempDir();
  const stop = new AbortController();
  try {
    const path = join(dir, "x.log");
    await Deno.writeTextFile(path, "one\n");
    const { end } = await readLogTail(path);
    const seen: string[] = [];
    const following = followLog(path, end, (lines) => {
      seen.push(...lines);
      return Promise.resolve();
    }, { signal: stop.signal, pollMs: 10, chunkBytes: 8 });
    await Deno.writeTextFile(path, "two\nthree-is-long\n", { append: true });
    for (let i = 0; i < 200 && seen.join("") !== "two" + "three-is-long"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    stop.abort();
    await following;
    assert.equal(seen[0], "two");
    assert.equal(
      seen.slice(1).join(""),
      "three-is-long",
      "a line longer than a chunk comes in pieces",
    );
  } finally {
    stop.abort();
    await Deno.remove(dir, { recursive: true });
  }
});
