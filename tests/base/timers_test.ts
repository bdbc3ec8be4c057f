import assert from "node:assert/strict";
import {
  clearInterval,
  clearTimeout,
  setInterval,
  setTimeout,
  TIMER_SOURCE,
} from "../../src/base/timers.ts";
import { fromFileUrl } from "../../src/base/paths.ts";

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// Deno 2.9's global setTimeout loads the Node layer; this module must not on
// the Deno the project pins. A Deno that stops exposing its core timers
// falls back to the globals: this says so, loudly, instead of a silent +4 MB.
Deno.test("timers come from Deno's core on this Deno, not from the Node-layer globals", () => {
  assert.equal(TIMER_SOURCE, "core");
});

Deno.test("setTimeout() fires once, in order of due time, and clearTimeout() stops one", async () => {
  const fired: string[] = [];
  setTimeout(() => fired.push("b"), 20);
  setTimeout(() => fired.push("a"), 5);
  const stopped = setTimeout(() => fired.push("never"), 10);
  clearTimeout(stopped);
  clearTimeout(stopped);
  clearTimeout(undefined);
  await wait(60);
  assert.deepEqual(fired, ["a", "b"]);
});

Deno.test("clearTimeout() of a timer that fired already changes nothing", async () => {
  let fired = 0;
  const timer = setTimeout(() => fired++, 1);
  await wait(20);
  clearTimeout(timer);
  const next = setTimeout(() => fired++, 1);
  await wait(20);
  assert.equal(fired, 2);
  clearTimeout(next);
});

Deno.test("setInterval() repeats until clearInterval()", async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  await wait(80);
  clearInterval(timer);
  const seen = ticks;
  assert.ok(seen >= 3, `ticked ${seen} times in 80 ms`);
  await wait(30);
  assert.equal(ticks, seen, "no tick after clearInterval()");
});

async function runScript(
  body: string,
  v8Flags: string[] = [],
): Promise<{ code: number; stdout: string }> {
  const url = new URL("../../src/base/timers.ts", import.meta.url).href;
  const flags = v8Flags.length > 0 ? [`--v8-flags=${v8Flags.join(",")}`] : [];
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", ...flags, `import * as t from "${url}";\n${body}`],
    cwd: fromFileUrl(new URL(".", import.meta.url)),
    stdout: "piped",
    stderr: "inherit",
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout).trim() };
}

/** Whether running `body` loaded Deno's Node layer (from V8's function-event log). */
async function loadsNodeLayer(body: string): Promise<boolean> {
  const dir = await Deno.makeTempDir();
  try {
    const log = `${dir}/v8.log`;
    const run = await runScript(body, [
      "--log-function-events",
      `--logfile=${log}`,
      "--no-logfile-per-isolate",
    ]);
    assert.equal(run.code, 0);
    // Every Deno start registers Node's cloneable types (`02_register_cloneable.js`);
    // the layer itself is every other script of `ext:deno_node/` and `node:`.
    const scripts = (await Deno.readTextFile(log)).matchAll(/^script-details,\d+,([^,]+)/gm);
    return [...scripts].some(([, name]) =>
      /^(ext:deno_node\/|node:)/.test(name!) && !name!.endsWith("/02_register_cloneable.js")
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("timers of this module leave the Node layer unloaded; the global setTimeout loads it", async () => {
  const ours = "t.clearTimeout(t.setTimeout(() => {}, 1)); await new Promise((r) => " +
    "t.setTimeout(r, 5)); t.clearInterval(t.setInterval(() => {}, 1));";
  assert.equal(await loadsNodeLayer(ours), false);
  assert.equal(await loadsNodeLayer("await new Promise((r) => setTimeout(r, 5));"), true);
});

Deno.test("a pending timer keeps the process alive, an unref()ed one does not", async () => {
  const kept = await runScript('t.setTimeout(() => console.log("fired"), 50);');
  assert.deepEqual(kept, { code: 0, stdout: "fired" });
  const dropped = await runScript(
    't.setTimeout(() => console.log("fired"), 5000).unref(); console.log("ended");',
  );
  assert.deepEqual(dropped, { code: 0, stdout: "ended" });
  const again = await runScript(
    't.setTimeout(() => console.log("fired"), 50).unref().ref();',
  );
  assert.deepEqual(again, { code: 0, stdout: "fired" });
});
