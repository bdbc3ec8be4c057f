/**
 * `reconnect`: an application process that starts anew (after a crash) and
 * attaches to the running fabric from the fabric file: time from its start to
 * every service of its session connected (`fabricd connect --session S`),
 * against a bare `deno run` of an empty script started the same way.
 * @module
 */
import { join } from "node:path";
import { withBenchFabric } from "./_local_fabric.ts";
import { selfCommand } from "../../src/image/self_command.ts";
import { type Benchmark, type BenchResult, envNumber, median, round, say } from "./_harness.ts";

const NAME = "reconnect";
const SERVICES = 4;

/** The `reconnect` benchmark; `BENCH_RUNS` overrides the 10 rounds. */
export const reconnect: Benchmark = {
  name: NAME,
  description:
    `a new application process to ${SERVICES} session services connected vs a bare deno run`,
  run,
};

async function timeCommand(executable: string, args: string[]): Promise<number> {
  const start = performance.now();
  const out = await new Deno.Command(executable, { args, stdout: "null", stderr: "piped" })
    .output();
  const ms = performance.now() - start;
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return ms;
}

async function run(): Promise<BenchResult> {
  const runs = Math.round(envNumber("BENCH_RUNS", 10));
  return await withBenchFabric("reconnect", 2000, async (local, dir) => {
    const fabricPath = join(dir, "fabric.yaml");
    for (let i = 0; i < SERVICES; i++) {
      await local.client.call(local.spawner, {
        method: "POST",
        path: "/v1/spawn",
        body: { role: "spawner", sessions: ["bench-session"] },
      });
    }
    const empty = join(dir, "empty.ts");
    await Deno.writeTextFile(empty, "export {};\n");
    const self = selfCommand();
    const connectArgs = [
      ...self.prefix,
      "connect",
      "--session",
      "bench-session",
      "--fabric",
      fabricPath,
    ];
    const bareArgs = ["run", "--quiet", empty];
    await timeCommand(self.executable, connectArgs);
    await timeCommand(Deno.execPath(), bareArgs);
    const connects: number[] = [];
    const bares: number[] = [];
    for (let i = 0; i < runs; i++) {
      connects.push(await timeCommand(self.executable, connectArgs));
      bares.push(await timeCommand(Deno.execPath(), bareArgs));
    }
    const value = median(connects);
    const baseline = median(bares);
    say(
      NAME,
      `new process to ${SERVICES} services connected: ${round(value)} ms (bare deno run ${
        round(baseline)
      } ms)`,
    );
    say(
      NAME,
      "anchors: Consul/memberlist 4-24 s to declare a node dead, Nomad 20-30 s, RADICAL-Pilot 600 s",
    );
    return {
      name: NAME,
      value: round(value),
      baseline: round(baseline),
      ratio: round(value / baseline, 3),
      unit: "ms",
      runs,
      services: SERVICES,
    };
  });
}
