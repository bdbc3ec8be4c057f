/**
 * `image-copy-cold`: copying the fabricd image into an empty cache on the
 * gateway, against plain `ssh cat`. The image is built here, outside the test
 * network (not counted); a driver inside the testnet's desktop opens one
 * `SshConnection` (ControlMaster) to the gateway, and N times empties the
 * gateway's `~/.cache/fabricd` and times `shipImage` over that connection.
 *
 * What each side includes:
 * - value: `shipImage` as the SSH launcher runs it: the probe command, then
 *   one channel fed by `cat`: the small files as one tar stream (packed while
 *   the probe runs), then the large file (deno) as its compressed form made at
 *   build time (raw when the image has no packed form), kept, decompressed and
 *   hashed on the host while it arrives; the same remote script compares the
 *   hashes, links the per-file store, writes the manifest, chmods and renames;
 * - baseline (the "ssh host cat > file for the same bytes"): every
 *   image file's bytes in one stream, `cat FILES | ssh -S MASTER gateway
 *   'cat >FILE'`, over the same ControlMaster; `cat >/dev/null` is reported
 *   beside it. The ratio is the median of the per-run ratios (runs alternate
 *   which side goes first, so drift of the machine's load hits both alike).
 *
 * Runs once per link profile (`BENCH_PROFILES`, "lan,wan" by default; the WAN
 * profile is `scripts/testnet up --wan`), a RESULT line each.
 * @module
 */
import { testnetExec } from "../../tests/e2e/_testnet.ts";
import { type Benchmark, type BenchResult, envNumber, round, say, summarize } from "./_harness.ts";
import type { ShipOutput } from "./_testnet_common.ts";
import {
  emptyImageCache,
  killProcessesMentioning,
  type LinkProfile,
  perProfile,
  prepareTestnet,
  releaseTestnet,
  runDriver,
} from "./_testnet_host.ts";

const NAME = "image-copy-cold";
const GOAL = 1.1;

/** The `image-copy-cold` benchmark; `BENCH_RUNS` overrides the 5 runs. */
export const imageCopyCold: Benchmark = {
  name: NAME,
  description:
    "testnet, LAN and WAN: shipImage into gateway's empty cache vs `cat FILES | ssh gateway 'cat >FILE'` (ratio <= 1.1)",
  run: () => perProfile(NAME, runProfile),
};

async function runProfile(profile: LinkProfile): Promise<BenchResult> {
  const runs = Math.round(envNumber("BENCH_RUNS", 5));
  const began = performance.now();
  const imageDir = await prepareTestnet(NAME, profile);
  const dir = await Deno.makeTempDir({ prefix: "fabricd-bench-ship-" });
  try {
    await emptyImageCache("gateway");
    const out = await runDriver<ShipOutput>(
      NAME,
      "desktop",
      ["ship", dir, "gateway", String(runs), imageDir],
      170_000,
    );
    const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
    const ship = summarize(out.runs.map((r) => r.shipMs));
    const catNull = summarize(out.runs.map((r) => sum(r.catNullMs)));
    const catDisk = summarize(out.runs.map((r) => sum(r.catDiskMs)));
    const first = out.runs[0]!.result;
    const ratios = out.runs.map((r) => r.shipMs / sum(r.catDiskMs)).sort((a, b) => a - b);
    const ratio = ratios[Math.floor(ratios.length / 2)]!;
    const mb = (n: number): number => round(n / 1e6, 1);
    say(
      NAME,
      `image ${out.kind} ${out.hash.slice(0, 12)}: ${out.files.length} files, ` +
        `total ${mb(first.bytes)} MB`,
    );
    say(
      NAME,
      `shipImage: median ${round(ship.p50, 0)} ms, min ${round(ship.min, 0)}, max ${
        round(ship.max, 0)
      } (${ship.n} runs), ${first.compression}, ${mb(first.sent)} MB sent (${
        round(first.sent / first.bytes * 100, 1)
      } %), ${round(first.bytes / 1e6 / (ship.p50 / 1000), 0)} MB/s of image`,
    );
    say(
      NAME,
      `ssh cat >/dev/null (raw, same master): median ${round(catNull.p50, 0)} ms; ` +
        `ssh cat >file: median ${round(catDisk.p50, 0)} ms`,
    );
    say(
      NAME,
      `parts, once: local zstd -1 ${
        out.parts.compressMs.map((m) => round(m, 0)).join(" + ")
      } ms; remote sha256sum ${round(out.parts.verifyMs, 0)} ms; one exec over the master ${
        round(out.parts.execMs, 0)
      } ms`,
    );
    say(
      NAME,
      `ratio ${round(ratio, 2)} (goal <= ${GOAL}); took ${
        round((performance.now() - began) / 1000, 1)
      } s; testnet taken down after`,
    );
    return {
      name: NAME,
      value: round(ship.p50),
      baseline: round(catDisk.p50),
      ratio: round(ratio, 3),
      unit: "ms",
      goal: `ratio <= ${GOAL}`,
      goal_met: ratio <= GOAL,
      runs: ship.n,
      bytes: first.bytes,
      sent_bytes: first.sent,
      compression: first.compression,
      image_kind: out.kind,
      files: out.files,
      ship_min_ms: round(ship.min),
      ship_max_ms: round(ship.max),
      baseline_to_null_p50_ms: round(catNull.p50),
      compress_local_ms: out.parts.compressMs.map((m) => round(m)),
      verify_remote_ms: round(out.parts.verifyMs),
      exec_roundtrip_ms: round(out.parts.execMs),
      image_made_ms: round(out.imageMs),
      master_open_ms: round(out.openMs),
      value_is: "shipImage over one SshConnection: probe, then one channel: small files as " +
        "one tar, deno as its build-time zstd form, decompressed and hashed while written, " +
        "checked and installed by the same script (cache emptied before each run)",
      baseline_is: "`cat FILES | ssh -S <same master> gateway 'cat >FILE'`, uncompressed; " +
        "ratio = median of per-run ratios",
      testnet: "taken down after",
      missing_bytes: first.missingBytes,
      ship_runs_ms: out.runs.map((r) => round(r.shipMs)),
      baseline_runs_ms: out.runs.map((r) => round(sum(r.catDiskMs))),
    };
  } catch (error) {
    say(NAME, "failed; gateway's cache now holds:");
    const ls = await testnetExec("gateway", [
      "sh",
      "-c",
      'ls -la "$HOME/.cache/fabricd" 2>&1 | head -n 20',
    ]);
    console.log(ls.stdout + ls.stderr);
    throw error;
  } finally {
    killProcessesMentioning(NAME, dir);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await releaseTestnet(NAME);
  }
}
