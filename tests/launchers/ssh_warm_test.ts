import assert from "node:assert/strict";
import { join } from "node:path";
import type { LaunchedProcess, LaunchSpec } from "../../src/launchers/launcher.ts";
import { SshWarmProcess, type Started } from "../../src/launchers/ssh_warm.ts";
import { withTempDir } from "../e2e/_fabric.ts";

/** A stand-in for the warm process's channel: `sh` copies its stdin into `file`. */
function started(file: string): Started {
  const child = new Deno.Command("sh", {
    args: ["-c", `cat > "${file}"`],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  return { child, pid: child.pid, exited: child.status.then((s) => s.code) };
}

const SPEC: LaunchSpec = {
  id: "spw-0000beef",
  args: ["--role", "spawner", "--id", "spw-0000beef"],
  env: {
    FABRIC_OTP: "pw",
    FABRIC_PARENT: "spw-00000001@http://127.0.0.1:1",
    FABRIC_PIN: "sha256:x",
  },
};

function hooks(log: string[]) {
  return {
    handedOver: (spec: LaunchSpec) => ({ pid: 1, logFile: spec.id } as unknown as LaunchedProcess),
    signal: (signal: Deno.Signal) => void log.push(signal),
    release: () => void log.push("release"),
  };
}

Deno.test("SshWarmProcess hands over one JSON line down its channel, then closes it", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "stdin");
    const log: string[] = [];
    const warm = new SshWarmProcess("spawner", started(file), hooks(log));
    const launched = await warm.handOver(SPEC);
    assert.equal(launched.logFile, "spw-0000beef");
    assert.equal(await warm.exited, 0, "its input was closed");
    const line = JSON.parse(await Deno.readTextFile(file));
    assert.deepEqual(line, {
      id: "spw-0000beef",
      role: "spawner",
      password: "pw",
      parent: "spw-00000001@http://127.0.0.1:1",
      pin: "sha256:x",
    });
    await assert.rejects(() => warm.handOver(SPEC), /already handed over/);
    assert.ok(log.includes("release"));
  });
});

Deno.test("SshWarmProcess refuses a hand-over once it has ended, so the pool starts the service cold", async () => {
  await withTempDir(async (dir) => {
    const warm = new SshWarmProcess("spawner", started(join(dir, "stdin")), hooks([]));
    await warm.stop();
    const other = new SshWarmProcess("spawner", started(join(dir, "other")), hooks([]));
    // Its channel ends by itself (the process was killed on the host).
    Deno.kill(other.pid, "SIGKILL");
    await other.exited;
    await new Promise((resolve) => setTimeout(resolve, 0));
    await assert.rejects(() => other.handOver(SPEC), /has ended/);
    await assert.rejects(() => warm.handOver(SPEC), /already handed over or stopped/);
  });
});
