import assert from "node:assert/strict";
import { join } from "node:path";
import { launcherScript, SERVICE_V8_FLAGS } from "../../src/image/self_command.ts";
import { shellQuote } from "../../src/launchers/ssh_connection.ts";
import { withTempDir } from "../e2e/_fabric.ts";

/** Runs the launcher of an image in `dir` whose `deno` prints its arguments, one a line. */
async function launch(dir: string, args: string[], env: Record<string, string> = {}) {
  await Deno.writeTextFile(join(dir, "deno"), '#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n', {
    mode: 0o755,
  });
  await Deno.chmod(join(dir, "deno"), 0o755);
  await Deno.writeTextFile(join(dir, "fabricd"), launcherScript(), { mode: 0o755 });
  await Deno.writeTextFile(join(dir, "installed"), launcherScript(shellQuote(dir)));
  const run = async (script: string): Promise<string[]> => {
    const out = await new Deno.Command("/bin/sh", { args: [script, ...args], env }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout).trimEnd().split("\n");
  };
  const direct = await run(join(dir, "fabricd"));
  assert.deepEqual(
    await run(join(dir, "installed")),
    direct,
    "installed and image launchers differ",
  );
  return direct;
}

Deno.test("launcherScript() gives a service its V8 flags and a command none", async () => {
  await withTempDir(async (dir) => {
    const service = await launch(dir, ["--role", "registry", "--id", "a b"]);
    assert.equal(service[0], "run");
    assert.ok(service.includes(`--v8-flags=${SERVICE_V8_FLAGS.join(",")}`), service.join(" "));
    assert.deepEqual(service.slice(-5), [
      join(dir, "js/main.js"),
      "--role",
      "registry",
      "--id",
      "a b",
    ]);
    const command = await launch(dir, ["status", "--role", "agent"]);
    assert.equal(command.filter((a) => a.startsWith("--v8-flags")).length, 0, command.join(" "));
    assert.ok(command.includes("--cached-only") && command.includes("--no-remote"));
  });
});

Deno.test("launcherScript() takes FABRIC_V8_FLAGS instead, and none when it is empty", async () => {
  await withTempDir(async (dir) => {
    const chosen = await launch(dir, ["--role=agent"], { FABRIC_V8_FLAGS: "--lite-mode" });
    assert.ok(chosen.includes("--v8-flags=--lite-mode"), chosen.join(" "));
    const none = await launch(dir, ["--role", "agent"], { FABRIC_V8_FLAGS: "" });
    assert.equal(none.filter((a) => a.startsWith("--v8-flags")).length, 0, none.join(" "));
    assert.ok(!none.includes(""), "an empty argument was passed");
  });
});
