import assert from "node:assert/strict";
import { WarmPool, type WarmStarter } from "../../src/children/warm_pool.ts";
import type { WarmProcess } from "../../src/launchers/launcher.ts";
import type { LaunchedProcess, LaunchSpec } from "../../src/launchers/launcher.ts";

/** A starter of fake warm processes that records what happened to them. */
function fakeStarter() {
  const started: { role: string; end: (code: number) => void; stopped: boolean; handed: string }[] =
    [];
  const cold: string[] = [];
  const starter: WarmStarter = {
    startWarm(role: string): Promise<WarmProcess> {
      let end: (code: number) => void = () => {};
      const exited = new Promise<number>((resolve) => (end = resolve));
      const entry = { role, end, stopped: false, handed: "" };
      started.push(entry);
      return Promise.resolve({
        role,
        pid: 1000 + started.length,
        exited,
        handOver: (spec: LaunchSpec) => {
          entry.handed = spec.id;
          return Promise.resolve({ pid: 1, logFile: "x" } as LaunchedProcess);
        },
        stop: () => {
          entry.stopped = true;
          end(0);
          return Promise.resolve();
        },
      });
    },
    launch: (spec: LaunchSpec) => {
      cold.push(spec.id);
      return Promise.resolve({ pid: 2, logFile: "y" } as LaunchedProcess);
    },
  };
  return { starter, started, cold };
}

const spec = (id: string): LaunchSpec => ({ id, args: ["--role", "spawner", "--id", id], env: {} });
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("WarmPool.launch() starts cold when empty and hands over to a warm process after refill()", async () => {
  const { starter, started, cold } = fakeStarter();
  const pool = new WarmPool(starter, { perRole: 1 });
  await pool.launch("spawner", spec("spw-1"));
  assert.deepEqual(cold, ["spw-1"]);
  pool.refill("spawner");
  pool.refill("spawner");
  await settle();
  assert.equal(started.length, 1, "refill keeps one per role, not one per call");
  await pool.launch("spawner", spec("spw-2"));
  assert.equal(started[0]!.handed, "spw-2");
  assert.deepEqual(cold, ["spw-1"]);
  assert.equal(pool.size("spawner"), 0);
  await pool.stop();
});

Deno.test("WarmPool.stop() stops the warm processes not taken and refills no more", async () => {
  const { starter, started } = fakeStarter();
  const pool = new WarmPool(starter, { perRole: 2, maxTotal: 3 });
  pool.refill("spawner");
  pool.refill("queue");
  await settle();
  assert.equal(started.length, 3, "maxTotal bounds the pool over all roles");
  await pool.stop();
  assert.ok(started.every((s) => s.stopped));
  pool.refill("spawner");
  await settle();
  assert.equal(started.length, 3);
});

Deno.test("WarmPool.refill() gives up on a role whose warm processes keep dying unused", async () => {
  const { starter, started } = fakeStarter();
  const pool = new WarmPool(starter, { perRole: 1, maxFailures: 2 });
  pool.refill("spawner");
  await settle();
  started[0]!.end(1);
  await settle();
  await settle();
  assert.equal(started.length, 2, "one failure: refilled");
  started[1]!.end(1);
  await settle();
  await settle();
  assert.equal(started.length, 2, "two failures in a row: no more refills");
  assert.equal(pool.size("spawner"), 0);
  await pool.stop();
});

Deno.test("WarmPool does not replace a warm process killed by a signal until the role's next spawn", async () => {
  const { starter, started, cold } = fakeStarter();
  const pool = new WarmPool(starter, { perRole: 1 });
  pool.refill("spawner");
  await settle();
  started[0]!.end(143); // SIGTERM from someone on the host
  await settle();
  await settle();
  assert.equal(started.length, 1, "not replaced at once");
  assert.equal(pool.size("spawner"), 0);
  await pool.launch("spawner", spec("spw-00000001"));
  assert.deepEqual(cold, ["spw-00000001"], "the next spawn starts cold");
  pool.refill("spawner");
  await settle();
  assert.equal(started.length, 2, "and refills after it");
  await pool.stop();
});
