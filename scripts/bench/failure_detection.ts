/**
 * `failure-detection`: how fast the fabric notices a dead service and brings
 * it back, against the configured TTL (heartbeat 500 ms, TTL 1.5 s).
 *
 * Two ways to die are measured on the same local fabric:
 * - SIGKILL: the parent sees its child's process end and records DEAD at once;
 * - SIGSTOP (a hung process, or a host that vanished): only missing heartbeats
 *   tell, so DEAD comes from the registry's TTL.
 * The headline value is SIGKILL to DEAD; the hang is reported beside it.
 * @module
 */
import type { LocalFabric } from "../../src/cli/local_fabric.ts";
import { withBenchFabric } from "./_local_fabric.ts";
import type { ServiceRecord, SpawnResult } from "../../src/types/mod.ts";
import { type Benchmark, type BenchResult, envNumber, median, round, say } from "./_harness.ts";

const NAME = "failure-detection";
const HEARTBEAT_MS = 500;
const TTL_MS = HEARTBEAT_MS * 3;

/** The `failure-detection` benchmark; `BENCH_RUNS` overrides the 7 rounds. */
export const failureDetection: Benchmark = {
  name: NAME,
  description: "SIGKILL (and hang) to DEAD vs the TTL, and back to ALIVE (ratio <= 1.3)",
  run,
};

interface Round {
  deadMs: number;
  aliveMs: number;
}

async function run(): Promise<BenchResult> {
  const runs = Math.round(envNumber("BENCH_RUNS", 7));
  return await withBenchFabric("fail", HEARTBEAT_MS, async (local) => {
    const killed: Round[] = [];
    const hung: Round[] = [];
    for (let i = 0; i < runs; i++) {
      killed.push(await measure(local, "SIGKILL"));
      hung.push(await measure(local, "SIGSTOP"));
      say(
        NAME,
        `round ${i + 1}/${runs}: SIGKILL->DEAD ${round(killed.at(-1)!.deadMs)} ms, ` +
          `hang->DEAD ${round(hung.at(-1)!.deadMs)} ms`,
      );
    }
    const value = median(killed.map((r) => r.deadMs));
    const hangDead = median(hung.map((r) => r.deadMs));
    const ratio = value / TTL_MS;
    say(
      NAME,
      `TTL ${TTL_MS} ms; SIGKILL->DEAD ${round(value)} ms; hang->DEAD ${round(hangDead)} ms`,
    );
    say(NAME, "anchors: Consul/memberlist 4-24 s at 10 nodes, Nomad 20-30 s, RADICAL-Pilot 600 s");
    return {
      name: NAME,
      value: round(value),
      baseline: TTL_MS,
      ratio: round(ratio, 3),
      unit: "ms (SIGKILL to DEAD)",
      goal: "ratio <= 1.3",
      goal_met: ratio <= 1.3,
      runs,
      kill_to_alive_ms: round(median(killed.map((r) => r.aliveMs))),
      hang_to_dead_ms: round(hangDead),
      hang_ratio: round(hangDead / TTL_MS, 3),
      hang_to_alive_ms: round(median(hung.map((r) => r.aliveMs))),
      heartbeat_ms: HEARTBEAT_MS,
    };
  });
}

async function measure(local: LocalFabric, signal: "SIGKILL" | "SIGSTOP"): Promise<Round> {
  const spawned = await local.client.call<SpawnResult>(local.spawner, {
    method: "POST",
    path: "/v1/spawn",
    body: { role: "spawner" },
  });
  const before = await record(local, spawned.id);
  await new Promise((r) => setTimeout(r, HEARTBEAT_MS * 2));
  const start = performance.now();
  Deno.kill(before.pid, signal);
  let deadMs = -1;
  let now = before;
  try {
    while (performance.now() - start < 30_000) {
      now = await record(local, spawned.id);
      if (deadMs < 0 && (now.state === "DEAD" || now.incarnation > before.incarnation)) {
        deadMs = performance.now() - start;
      }
      if (now.state === "ALIVE" && now.incarnation > before.incarnation) break;
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    if (signal === "SIGSTOP") Deno.kill(before.pid, "SIGCONT");
  }
  const aliveMs = performance.now() - start;
  await local.client.call({ id: now.id, url: now.endpoint }, {
    method: "POST",
    path: "/v1/stop",
    body: { reason: "benchmark round done" },
  }).catch(() => {});
  return { deadMs, aliveMs };
}

async function record(local: LocalFabric, id: string): Promise<ServiceRecord> {
  return (await local.registry.get(id))!.record;
}
