/**
 * `ssh-hop-warm`: one SSH hop with a warm image cache. From the testnet's
 * desktop, with a fabric up, a bridge is spawned on `ssh://gateway` once (it
 * copies the image there and opens the root spawner's ControlMaster); then N
 * times a spawner is spawned on `ssh://gateway` through the root spawner and
 * the signed `POST /v1/spawn` is timed until its ALIVE answer (by a driver
 * inside the desktop, so no CLI start is counted), and stopped again.
 *
 * Baseline, measured in the same run (issue #17's floor): the median of
 * `ssh -S MASTER gateway true` over a ControlMaster the driver holds open (the
 * spawn also runs over an open connection), plus the median of a bare
 * `deno run --quiet empty.js` executed on the gateway itself with the image's
 * `deno`. A plain `ssh gateway true` (a new connection each time) is reported
 * beside it, with the ratio against that older floor.
 *
 * Runs once per link profile (`BENCH_PROFILES`, "lan,wan" by default; the WAN
 * profile is `scripts/testnet up --wan`), printing a RESULT line for each.
 * @module
 */
import {
  type Benchmark,
  type BenchResult,
  envNumber,
  median,
  round,
  say,
  summarize,
  type Summary,
} from "./_harness.ts";
import type { BareRunOutput, HopWarmOutput, LiteRecord } from "./_testnet_common.ts";
import { TestnetFabric } from "./_testnet_fabric.ts";
import { allProcs, type LinkProfile, perProfile, releaseTestnet } from "./_testnet_host.ts";
import { rssKb } from "./idle_memory.ts";

const NAME = "ssh-hop-warm";
const GOAL = 1.5;

/** The `ssh-hop-warm` benchmark; `BENCH_RUNS` overrides the 10 runs. */
export const sshHopWarm: Benchmark = {
  name: NAME,
  description:
    "testnet, LAN and WAN: spawn on ssh://gateway (warm cache) until ALIVE vs `ssh true` over an open connection + bare deno run (ratio <= 1.5)",
  run: () => perProfile(NAME, runProfile),
};

async function runProfile(profile: LinkProfile): Promise<BenchResult> {
  const runs = Math.round(envNumber("BENCH_RUNS", 10));
  const began = performance.now();
  const fabric = await TestnetFabric.onTestnet(NAME, profile);
  try {
    const hop = await fabric.driver<HopWarmOutput>(
      "desktop",
      ["hop-warm", fabric.fabric, "gateway", String(runs)],
      150_000,
    );
    fabric.remember(hop.records);
    if (hop.spawns.length === 0) {
      throw new Error(`No spawn on ssh://gateway succeeded: ${hop.failures[0] ?? "?"}`);
    }
    say(NAME, `bare process start on the gateway: ${runs} x deno run --quiet empty.js`);
    const bare = await fabric.driver<BareRunOutput>("gateway", ["bare-run", String(runs)], 60_000);
    const remote = remoteMemory(hop.warmup.id, hop.records);

    const spawn = summarize(hop.spawns.map((s) => s.ms));
    const sshTrue = summarize(hop.sshTrueMs);
    const sshTrueMaster = summarize(hop.sshTrueMasterMs);
    const bareRun = summarize(bare.samples);
    const baseline = sshTrueMaster.p50 + bareRun.p50;
    const ratio = spawn.p50 / baseline;
    const ratioNewConnection = spawn.p50 / (sshTrue.p50 + bareRun.p50);
    const phase = (key: "requestMs" | "launchMs" | "configureMs"): number =>
      median(hop.spawns.map((s) => s[key]).filter(Number.isFinite));
    const line = (what: string, s: Summary): string =>
      `${what}: median ${round(s.p50, 1)} ms, p90 ${round(s.p90, 1)} ms, min ${
        round(s.min, 1)
      } ms (${s.n} runs)`;
    say(NAME, `warm-up bridge on ssh://gateway: ${round(hop.warmup.ms, 0)} ms (not counted)`);
    say(
      NAME,
      `on the gateway, VmRSS: the bridge (a service, after the runs) ${
        remote.bridgeMb ?? "?"
      } MB; a warm process waiting for its hand-over ${remote.warmMb ?? "?"} MB`,
    );
    say(NAME, line("warm spawn on ssh://gateway to ALIVE", spawn));
    say(
      NAME,
      `  phases (registry times, medians): request->LAUNCHING ${
        round(phase("requestMs"), 1)
      } ms, ` +
        `LAUNCHING->BOOTSTRAPPING ${round(phase("launchMs"), 1)} ms, BOOTSTRAPPING->ALIVE ${
          round(phase("configureMs"), 1)
        } ms`,
    );
    say(NAME, line("ssh -S MASTER gateway true (open connection)", sshTrueMaster));
    say(NAME, line("ssh gateway true (new connection)", sshTrue));
    say(NAME, line(`bare deno run on the gateway (${bare.deno})`, bareRun));
    say(
      NAME,
      `baseline ${round(baseline, 1)} ms; ratio ${round(ratio, 2)} (goal <= ${GOAL}; ` +
        `${round(ratioNewConnection, 2)} against a new connection + bare run); ` +
        `took ${round((performance.now() - began) / 1000, 1)} s; testnet taken down after`,
    );
    if (hop.failures.length > 0) {
      say(NAME, `${hop.failures.length} spawn(s) failed: ${hop.failures[0]}`);
    }
    return {
      name: NAME,
      value: round(spawn.p50),
      baseline: round(baseline),
      ratio: round(ratio, 3),
      unit: "ms",
      goal: `ratio <= ${GOAL}`,
      goal_met: ratio <= GOAL,
      runs: spawn.n,
      spawn_p90_ms: round(spawn.p90),
      spawn_min_ms: round(spawn.min),
      request_to_launching_p50_ms: round(phase("requestMs")),
      launch_to_bootstrap_p50_ms: round(phase("launchMs")),
      bootstrap_to_alive_p50_ms: round(phase("configureMs")),
      ssh_true_master_p50_ms: round(sshTrueMaster.p50),
      ssh_true_p50_ms: round(sshTrue.p50),
      ratio_vs_new_connection: round(ratioNewConnection, 3),
      bare_run_p50_ms: round(bareRun.p50),
      warmup_bridge_ms: round(hop.warmup.ms),
      remote_bridge_rss_mb: remote.bridgeMb,
      remote_warm_rss_mb: remote.warmMb,
      failed_spawns: hop.failures.length,
      ...(hop.failures.length > 0 ? { first_failure: hop.failures[0] } : {}),
      baseline_is: "median(ssh -S MASTER gateway true, over an open connection, from desktop) + " +
        "median(deno run --quiet empty.js on gateway)",
      testnet: "taken down after",
    };
  } catch (error) {
    await fabric.showLogs(["gateway"]);
    throw error;
  } finally {
    await fabric.shutDown();
    await releaseTestnet(NAME);
  }
}

/**
 * Resident memory on the gateway (issue #17 item 7), read from /proc: the
 * testnet shares this machine's PID namespace. The warm-up bridge has served
 * the runs; a warm process of the root spawner's pool there waits idle.
 */
function remoteMemory(
  bridgeId: string,
  records: LiteRecord[],
): { bridgeMb: number | null; warmMb: number | null } {
  const mb = (pid: number | undefined): number | null => {
    try {
      return pid ? round(rssKb(pid) / 1024, 1) : null;
    } catch {
      return null;
    }
  };
  const bridge = records.find((r) => r.id === bridgeId)?.pid;
  const warm = allProcs().find((p) =>
    p.cmdline.includes("/fabricd-testnet/gateway/") && p.cmdline.includes("--warm") &&
    p.cmdline.includes("js/main.js")
  )?.pid;
  return { bridgeMb: mb(bridge), warmMb: mb(warm) };
}
