/**
 * A half-started child is found and killed with the permissions fabricd
 * runs with (docs/failures.md "Restarts survive their restarter"): Deno 2.9
 * refuses every read of `/proc` without `--allow-all`, and the kill used to
 * find nothing, silently.
 */
import assert from "node:assert/strict";
import { PERMISSION_FLAGS } from "../../src/image/self_command.ts";
import { fromFileUrl } from "../../src/base/paths.ts";

const ID = "agt-0afa0afa";

/** Runs `_killOrphanProcess` in a process with fabricd's own flags; its answer. */
async function killAs(record: { pid: number; launcher: string }): Promise<number[]> {
  const module = fromFileUrl(new URL("../../src/children/_orphan_process.ts", import.meta.url));
  const code = `import { _killOrphanProcess } from ${JSON.stringify(module)};
    const record = { id: ${JSON.stringify(ID)}, ...${JSON.stringify(record)} };
    console.log(JSON.stringify(_killOrphanProcess(record)));`;
  // `deno eval` runs with every permission: a script file runs with the flags given.
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(script, code);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", ...PERMISSION_FLAGS, script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return JSON.parse(new TextDecoder().decode(out.stdout));
  } finally {
    await Deno.remove(script);
  }
}

/** A process whose command line names `--role agent --id ID`, as a half-started child's does. */
function halfStarted(): Deno.ChildProcess {
  return new Deno.Command("/bin/sh", {
    args: ["-c", "sleep 30; true", "fabricd", "--role", "agent", "--id", ID],
    stdout: "null",
    stderr: "null",
  }).spawn();
}

Deno.test({
  name: "_killOrphanProcess() kills a half-started child by its --id, with fabricd's permissions",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    for (const byPid of [false, true]) {
      const child = halfStarted();
      try {
        const killed = await killAs({ pid: byPid ? child.pid : 0, launcher: "local://" });
        assert.deepEqual(
          killed,
          [child.pid],
          byPid ? "by the record's pid" : "by its command line",
        );
        assert.equal((await child.status).signal, "SIGKILL");
      } finally {
        try {
          child.kill("SIGKILL");
        } catch {
          // Killed by the test already.
        }
        await child.status;
      }
    }
    const other = halfStarted();
    try {
      assert.deepEqual(await killAs({ pid: 0, launcher: "ssh://gateway" }), [], "not ours to kill");
    } finally {
      other.kill("SIGKILL");
      await other.status;
    }
  },
});
