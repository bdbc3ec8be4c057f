/**
 * A warm process's exit code for what its spawner writes on its standard
 * input (docs/protocol.md 4.11): 0 only at the end of input, 78 for an empty,
 * an over-long or a malformed hand-over line.
 */
import assert from "node:assert/strict";
import { FABRICD, withTempDir } from "../e2e/_fabric.ts";

/** Starts `fabricd --role spawner --warm`, writes `input` and closes the pipe; its exit code. */
async function warmExit(input: string): Promise<{ code: number; stderr: string }> {
  return await withTempDir(async (dir) => {
    const env = { ...Deno.env.toObject() };
    for (const name of ["FABRIC_OTP", "FABRIC_PARENT", "FABRIC_PIN"]) delete env[name];
    const child = new Deno.Command(FABRICD[0]!, {
      args: [...FABRICD.slice(1), "--role", "spawner", "--warm", "--dir", dir],
      env,
      clearEnv: true,
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    try {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(input)).catch(() => {});
      await writer.close().catch(() => {});
      const out = await child.output();
      return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
    } finally {
      clearTimeout(timer);
    }
  });
}

Deno.test("fabricd --warm exits 78 for an over-long or an empty hand-over line, 0 at the end of input", async () => {
  const [long, empty, end] = await Promise.all([
    warmExit(`${"x".repeat(2000)}\n`),
    warmExit("\n"),
    warmExit(""),
  ]);
  assert.equal(long.code, 78, long.stderr);
  assert.match(long.stderr, /longer than 1024 bytes/);
  assert.equal(empty.code, 78, empty.stderr);
  assert.equal(end.code, 0, end.stderr);
});
