import assert from "node:assert/strict";
import { join } from "node:path";
import { eventually } from "../_eventually.ts";
import { LocalLauncher } from "../../src/launchers/local.ts";
import type { SpawnResult } from "../../src/types/mod.ts";
import { stopServices } from "../../src/cli/stop_services.ts";
import { withLocalFabric } from "../e2e/_fabric.ts";

/** PIDs of running `--warm` processes whose command line names `dir`. */
function warmProcesses(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const args = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0");
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const zombie = stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
      if (!zombie && args.includes("--warm") && args.includes(dir)) pids.push(Number(entry.name));
    } catch {
      // Ended while we looked.
    }
  }
  return pids;
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Gone.
    }
  }
}

Deno.test("LocalLauncher.close() ends a warm process that was never handed over, and its log", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fabricd-warm-" });
  const launcher = new LocalLauncher({ dir });
  try {
    const warm = await launcher.startWarm("spawner");
    assert.ok(warm.pid > 0);
    await eventually(() => warmProcesses(dir).includes(warm.pid), { what: "the warm process" });
    await launcher.close();
    assert.equal(await warm.exited, 0, "a closed pipe ends a warm process with exit 0");
    assert.deepEqual(warmProcesses(dir), []);
    const logs = [...Deno.readDirSync(join(dir, "logs"))].map((e) => e.name);
    assert.deepEqual(logs, []);
    await assert.rejects(() => launcher.startWarm("spawner"), /closed/);
  } finally {
    killAll(warmProcesses(dir));
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("WarmProcess.handOver() refuses a spec for another role and keeps the process usable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fabricd-warm-" });
  const launcher = new LocalLauncher({ dir });
  try {
    const warm = await launcher.startWarm("spawner");
    const spec = {
      id: "brg-0badc0de",
      args: ["--role", "bridge", "--id", "brg-0badc0de"],
      env: { FABRIC_OTP: "x", FABRIC_PARENT: "spw-1@http://127.0.0.1:1", FABRIC_PIN: "p" },
    };
    await assert.rejects(() => warm.handOver(spec), /cannot become a bridge/);
    await assert.rejects(
      () => warm.handOver({ ...spec, args: ["--role", "spawner", "--id", spec.id], env: {} }),
      /needs FABRIC_OTP/,
    );
    await launcher.close();
    assert.equal(await warm.exited, 0);
  } finally {
    killAll(warmProcesses(dir));
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a spawner's warm pool serves the next spawn and leaves no warm process when it stops", async () => {
  let dir = "";
  try {
    await withLocalFabric(async (local, fabricDir) => {
      dir = fabricDir;
      const spawn = () =>
        local.client.call<SpawnResult>(local.spawner, {
          method: "POST",
          path: "/v1/spawn",
          body: { role: "spawner", on: "local://" },
        }, { timeoutMs: 60_000 });
      const first = await spawn();
      // The root spawner refills its pool once the spawn is done.
      await eventually(() => warmProcesses(dir).length === 1, { what: "one warm spawner" });
      const [warmPid] = warmProcesses(dir);
      // Warm processes are in no registry.
      const pids = (await local.registry.list()).map((r) => r.pid);
      assert.ok(!pids.includes(warmPid!));
      const second = await spawn();
      assert.equal(second.state, "ALIVE");
      const record = (await local.registry.get(second.id))!.record;
      assert.equal(record.pid, warmPid, "the second spawn took the warm process");
      const log = await Deno.readTextFile(join(dir, "logs", `${second.id}.log`));
      assert.match(log, /Warm process handed over/);
      assert.doesNotMatch(log, /"password"|FABRIC_OTP=/);
      await stopServices(local.client, local.registry, {
        reason: "test",
        ids: [first.id, second.id],
      });
      await eventually(() => warmProcesses(dir).length === 1, { what: "the refilled pool" });
    });
    // withLocalFabric stopped the root spawner: its pool went with it.
    await eventually(() => warmProcesses(dir).length === 0, { what: "no warm process left" });
  } finally {
    if (dir) killAll(warmProcesses(dir));
  }
});

Deno.test("LocalLauncher.warmCaches() runs a warm process to its end, and refuses a bad role", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fabricd-warm-caches-" });
  try {
    const launcher = new LocalLauncher({ dir });
    const started = performance.now();
    assert.equal(await launcher.warmCaches("registry"), true, "it loaded the code and exited 0");
    assert.ok(performance.now() - started < 30_000);
    assert.equal(await launcher.warmCaches("registry", 1), false, "past its time it is stopped");
    await assert.rejects(() => launcher.warmCaches("a/b"), RangeError);
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((entry) => entry.name),
      [],
      "nothing written in the state directory",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
