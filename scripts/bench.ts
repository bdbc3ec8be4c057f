/**
 * fabricd's benchmarks (`deno task bench NAME`): each prints its progress and
 * ends with one `RESULT {json}` line holding the value, a baseline measured in
 * the same run and their ratio. Timings are reported, never asserted.
 *
 * Exit codes: 0 when every benchmark ran, 1 when one could not run, 64 usage.
 * @module
 */
import type { Benchmark } from "./bench/_harness.ts";
import { printResult } from "./bench/_harness.ts";
import { cliLatency } from "./bench/cli_latency.ts";
import { failureDetection } from "./bench/failure_detection.ts";
import { growChain } from "./bench/grow_chain.ts";
import { imageCopyCold } from "./bench/image_copy_cold.ts";
import { localSpawn } from "./bench/local_spawn.ts";
import { pubsubVsNats } from "./bench/pubsub_vs_nats.ts";
import { reconnect } from "./bench/reconnect.ts";
import { registryFailover } from "./bench/registry_failover.ts";
import { registryHeartbeats } from "./bench/registry_heartbeats.ts";
import { scale } from "./bench/scale.ts";
import { signedRequests } from "./bench/signed_requests.ts";
import { slowClients } from "./bench/slow_clients.ts";
import { spawnFanout } from "./bench/spawn_fanout.ts";
import { sshHopWarm } from "./bench/ssh_hop_warm.ts";
import { idleMemory } from "./bench/idle_memory.ts";
import { taskThroughput } from "./bench/task_throughput.ts";
import { uiOverhead } from "./bench/ui_overhead.ts";

const BENCHMARKS: readonly Benchmark[] = [
  localSpawn,
  spawnFanout,
  idleMemory,
  signedRequests,
  slowClients,
  registryHeartbeats,
  scale,
  registryFailover,
  sshHopWarm,
  imageCopyCold,
  growChain,
  failureDetection,
  reconnect,
  taskThroughput,
  pubsubVsNats,
  cliLatency,
  uiOverhead,
];

function usage(): string {
  const width = Math.max(...BENCHMARKS.map((b) => b.name.length), 3);
  const lines = BENCHMARKS.map((b) => `  ${b.name.padEnd(width)}  ${b.description}`);
  return [
    "Usage: deno run -A scripts/bench.ts NAME|all",
    "",
    ...lines,
    `  ${"all".padEnd(width)}  every benchmark above, one after the other`,
    "",
    "Environment: BENCH_RUNS (local-spawn, ssh-hop-warm, image-copy-cold, grow-chain rounds, " +
    "cli-latency pairs), " +
    "BENCH_SECONDS (signed-requests, registry-heartbeats, scale), BENCH_ROUNDS (signed-requests), BENCH_STORES and BENCH_SCALE_NS (scale), " +
    "BENCH_MESSAGES, BENCH_WINDOW and BENCH_RUNS (pubsub-vs-nats), " +
    "BENCH_SETTLE_MS (local-spawn), BENCH_FANOUT and BENCH_PARALLEL (spawn-fanout), " +
    "BENCH_IDLE_SECONDS, BENCH_REQUESTS and BENCH_V8_FLAGS (idle-memory); " +
    "FABRIC_WARM_POOL=0 turns the spawners' warm pools off.",
  ].join("\n");
}

async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === "--help" || name === "-h") {
    console.log(usage());
    return 0;
  }
  const chosen = name === "all" ? BENCHMARKS : BENCHMARKS.filter((b) => b.name === name);
  if (name === undefined || rest.length > 0 || chosen.length === 0) {
    if (name !== undefined && chosen.length === 0) console.error(`Unknown benchmark "${name}"`);
    console.error(usage());
    return 64;
  }
  let code = 0;
  for (const benchmark of chosen) {
    console.log(`== ${benchmark.name}: ${benchmark.description}`);
    try {
      printResult(await benchmark.run());
    } catch (error) {
      console.error(
        `Benchmark "${benchmark.name}" could not run: ${
          error instanceof Error ? error.stack ?? error.message : error
        }`,
      );
      code = 1;
    }
  }
  return code;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
