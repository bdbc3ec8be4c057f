/**
 * `cli-latency`: `fabricd status` through the installed command (`deno task
 * install --prefix TMP`, a wrapper that execs the image's launcher) against a
 * bare `deno run` of an empty script with the same deno, on a local fabric.
 * The two run in turn, N times each; the ratio is the median of the per-pair
 * ratios. `fabricd --version` (the installed command's fixed cost: the
 * launcher, deno and the entry chunk) and `deno run main.ts status` from
 * source are timed too, for reference.
 * @module
 */
import { join } from "node:path";
import { type Benchmark, type BenchResult, envNumber, round, say, summarize } from "./_harness.ts";
import { withBenchFabric } from "./_local_fabric.ts";
import { timedCommand } from "./_testnet_common.ts";

const NAME = "cli-latency";
const GOAL = 1.5;

/** The `cli-latency` benchmark; `BENCH_RUNS` overrides the 20 pairs. */
export const cliLatency: Benchmark = {
  name: NAME,
  description:
    "installed `fabricd status` vs `deno run` of an empty script, same deno (ratio <= 1.5)",
  run,
};

async function run(): Promise<BenchResult> {
  const runs = Math.round(envNumber("BENCH_RUNS", 20));
  const prefix = await Deno.makeTempDir({ prefix: "fabricd-bench-install-" });
  try {
    const install = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-all",
        new URL("../install.ts", import.meta.url).pathname,
        "--prefix",
        prefix,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!install.success) {
      throw new Error(`deno task install failed: ${new TextDecoder().decode(install.stderr)}`);
    }
    say(NAME, new TextDecoder().decode(install.stdout).split("\n")[0] ?? "");
    const empty = join(prefix, "empty.js");
    await Deno.writeTextFile(empty, "");
    const fabricd = join(prefix, "bin", "fabricd");
    return await withBenchFabric(NAME, 2000, async (_local, dir) => {
      const status = [fabricd, "status", "--fabric", join(dir, "fabric.yaml")];
      const bare = [Deno.execPath(), "run", "--quiet", "--no-config", empty];
      // Both sides skip Deno's update check (the image's launcher does anyway).
      Deno.env.set("DENO_NO_UPDATE_CHECK", "1");
      const timed = (argv: string[]) => timedCommand(argv[0]!, argv);
      // Warm both (page cache, V8 code cache) before timing.
      await timed(status);
      await timed(bare);
      const cli: number[] = [];
      const base: number[] = [];
      const ratios: number[] = [];
      for (let i = 0; i < runs; i++) {
        const a = await timed(status);
        const b = await timed(bare);
        cli.push(a);
        base.push(b);
        ratios.push(a / b);
      }
      const fromSource = [
        Deno.execPath(),
        "run",
        "--quiet",
        "--allow-all",
        new URL("../../main.ts", import.meta.url).pathname,
        ...status.slice(1),
      ];
      const source: number[] = [];
      for (let i = 0; i < Math.min(runs, 5); i++) source.push(await timed(fromSource));
      const version: number[] = [];
      for (let i = 0; i < Math.min(runs, 10); i++) {
        version.push(await timed([fabricd, "--version"]));
      }
      ratios.sort((x, y) => x - y);
      const ratio = ratios[Math.floor(ratios.length / 2)]!;
      const c = summarize(cli);
      const b = summarize(base);
      const s = summarize(source);
      const v = summarize(version);
      say(NAME, `installed fabricd status: median ${round(c.p50, 1)} ms (min ${round(c.min, 1)})`);
      say(NAME, `deno run empty.js: median ${round(b.p50, 1)} ms (min ${round(b.min, 1)})`);
      say(NAME, `deno run main.ts status (from source): median ${round(s.p50, 1)} ms`);
      say(NAME, `installed fabricd --version: median ${round(v.p50, 1)} ms`);
      say(NAME, `ratio ${round(ratio, 2)} (goal <= ${GOAL})`);
      return {
        name: NAME,
        value: round(c.p50),
        baseline: round(b.p50),
        ratio: round(ratio, 3),
        unit: "ms",
        goal: `ratio <= ${GOAL}`,
        goal_met: ratio <= GOAL,
        runs,
        from_source_p50_ms: round(s.p50),
        version_p50_ms: round(v.p50),
        value_is: "PREFIX/bin/fabricd status --fabric FILE (installed by deno task install), " +
          "against a running local fabric",
        baseline_is: "deno run --quiet --no-config empty.js with the same deno; " +
          "ratio = median of per-pair ratios",
      };
    });
  } finally {
    await Deno.remove(prefix, { recursive: true }).catch(() => {});
  }
}
