/**
 * `grow-chain`: the time to grow desktop -> gateway (bridge) -> head (bridge)
 * -> compute1 (spawner) on the test network, as the wall time of the three
 * signed spawn requests (each to the service one hop up, timed by a driver
 * inside the desktop), cold and warm.
 *
 * - first grow: a fresh fabric, every remote cache empty; the root spawner also
 *   makes its bundle from source (`deno bundle`) here. Printed, not counted.
 * - cold: `~/.cache/fabricd` emptied on gateway, head and compute1 (the three
 *   services stopped first), then grown again;
 * - warm: caches kept, the three services stopped and grown again.
 *
 * value = median cold total, baseline = median warm total, ratio = cold / warm.
 * No goal: the anchor is RADICAL-Pilot's 62-97 s per pilot. Runs once per
 * link profile (`BENCH_PROFILES`, "lan,wan" by default), a RESULT line each.
 * @module
 */
import type { TestnetHost } from "../../tests/e2e/_testnet.ts";
import { type Benchmark, type BenchResult, envNumber, median, round, say } from "./_harness.ts";
import type { GrowOutput, SpawnSample } from "./_testnet_common.ts";
import { TestnetFabric } from "./_testnet_fabric.ts";
import { emptyImageCache, type LinkProfile, perProfile, releaseTestnet } from "./_testnet_host.ts";

const NAME = "grow-chain";
/** The RADICAL-Pilot anchor the fabric replaces: a pilot's virtualenv bootstrap. */
const RADICAL_PILOT_ANCHOR = "RADICAL-Pilot: 62-97 s per pilot for a virtualenv bootstrap";
const CHAIN_HOSTS: readonly TestnetHost[] = ["gateway", "head", "compute1"];

/** The `grow-chain` benchmark; `BENCH_RUNS` overrides the 2 cold/warm rounds. */
export const growChain: Benchmark = {
  name: NAME,
  description:
    "testnet, LAN and WAN: grow desktop->gateway->head->compute1, cold (empty image caches) vs warm (no goal)",
  run: () => perProfile(NAME, runProfile),
};

const total = (grow: GrowOutput): number => grow.hops.reduce((sum, h) => sum + h.ms, 0);

function describe(what: string, grow: GrowOutput): string {
  const hops = grow.hops.map((h) => `${h.on.slice(6)} ${round(h.ms / 1000, 2)}`).join(" + ");
  return `${what}: ${round(total(grow) / 1000, 2)} s (${hops} s)`;
}

async function runProfile(profile: LinkProfile): Promise<BenchResult> {
  const rounds = Math.round(envNumber("BENCH_RUNS", 2));
  const began = performance.now();
  const fabric = await TestnetFabric.onTestnet(NAME, profile);
  const orphans: string[] = [];
  let ids: string[] = [];
  const grow = async (what: string): Promise<GrowOutput> => {
    say(NAME, `${what}: growing the chain`);
    const out = await fabric.driver<GrowOutput>("desktop", ["grow", fabric.fabric], 120_000);
    fabric.remember(out.records);
    ids = out.hops.map((h) => h.id);
    say(NAME, describe(what, out));
    return out;
  };
  const stopChain = async (): Promise<void> => {
    if (ids.length === 0) return;
    await fabric.driver("desktop", ["stop", fabric.fabric, ...ids], 60_000);
    const left = fabric.leftovers(ids);
    if (left.length > 0) {
      throw new Error(`services still running after stop: pid ${left.map((p) => p.pid)}`);
    }
    for (const proc of fabric.killOrphans()) {
      orphans.push(proc.cmdline.slice(0, 200));
      say(
        NAME,
        `orphan of a stopped service, killed pid ${proc.pid}: ${proc.cmdline.slice(0, 120)}`,
      );
    }
    ids = [];
  };
  const emptyCaches = async (): Promise<void> => {
    for (const host of CHAIN_HOSTS) await emptyImageCache(host);
    say(NAME, `emptied ~/.cache/fabricd on ${CHAIN_HOSTS.join(", ")}`);
  };
  try {
    await emptyCaches();
    const first = await grow("first grow (fresh fabric, includes deno bundle on the desktop)");
    const colds: GrowOutput[] = [];
    const warms: GrowOutput[] = [];
    for (let r = 1; r <= rounds; r++) {
      await stopChain();
      await emptyCaches();
      colds.push(await grow(`round ${r} cold`));
      await stopChain();
      warms.push(await grow(`round ${r} warm`));
    }
    await stopChain();

    const cold = median(colds.map(total));
    const warm = median(warms.map(total));
    const ratio = cold / warm;
    const perHop = (samples: GrowOutput[], i: number): number =>
      median(samples.map((g) => g.hops[i]!.ms));
    const hopNames = first.hops.map((h: SpawnSample) => h.on);
    for (const [i, on] of hopNames.entries()) {
      say(
        NAME,
        `  ${on.padEnd(15)} cold ${round(perHop(colds, i), 0)} ms, warm ${
          round(perHop(warms, i), 0)
        } ms (first ${round(first.hops[i]!.ms, 0)} ms)`,
      );
    }
    say(
      NAME,
      `cold ${round(cold / 1000, 2)} s, warm ${round(warm / 1000, 2)} s, ratio ${
        round(ratio, 2)
      } (no goal); first grow of a fresh fabric ${round(total(first) / 1000, 2)} s`,
    );
    say(NAME, `anchor: ${RADICAL_PILOT_ANCHOR}`);
    say(
      NAME,
      `took ${round((performance.now() - began) / 1000, 1)} s; testnet taken down after` +
        (orphans.length > 0 ? `; ${orphans.length} orphaned process(es) killed` : ""),
    );
    const hops = (samples: GrowOutput[]): Record<string, number> =>
      Object.fromEntries(hopNames.map((on, i) => [on, round(perHop(samples, i))]));
    return {
      name: NAME,
      value: round(cold),
      baseline: round(warm),
      ratio: round(ratio, 3),
      unit: "ms",
      goal: "none (informative; anchor below)",
      rounds,
      cold_hops_p50_ms: hops(colds),
      warm_hops_p50_ms: hops(warms),
      cold_totals_ms: colds.map((g) => round(total(g))),
      warm_totals_ms: warms.map((g) => round(total(g))),
      first_grow_ms: round(total(first)),
      first_grow_hops_ms: Object.fromEntries(first.hops.map((h) => [h.on, round(h.ms)])),
      anchor: RADICAL_PILOT_ANCHOR,
      anchor_ms: [62_000, 97_000],
      orphans_killed: orphans.length,
      value_is: "sum of the 3 spawn requests' wall times, image caches on gateway, head, " +
        "compute1 emptied before (root spawner's bundle already made)",
      baseline_is: "the same, caches kept (services stopped and regrown)",
      testnet: "taken down after",
    };
  } catch (error) {
    await fabric.showLogs([...CHAIN_HOSTS]);
    throw error;
  } finally {
    await fabric.shutDown();
    await releaseTestnet(NAME);
  }
}
