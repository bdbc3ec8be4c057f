/**
 * `fabricd demo`: a scripted tour in a temporary directory. Grows a small
 * fabric, shows the tree, opens a session, stops everything and exits 0,
 * leaving no process behind.
 * @module
 */
import { join } from "../base/paths.ts";
import { log } from "../config/logging.ts";
import { sleep } from "../config/retry.ts";
import { EXIT, type SpawnResult } from "../types/mod.ts";
import { noMoreArgs, parseFlags, stringFlag } from "./args.ts";
import { CliError } from "./cli_error.ts";
import { initFabric } from "./init.ts";
import { startLocalFabric } from "./local_fabric.ts";
import { renderTree } from "./status_tree.ts";
import { runDemoTasks } from "./_demo_tasks.ts";

/** Help text of `fabricd demo`. */
export const DEMO_HELP = `fabricd demo [--pilots URL] [--keep]

A short tour in a temporary directory: creates a fabric, starts a registry and a
spawner, grows a small tree of services, opens a session, starts a pilot manager
with a queue and a pub/sub service, submits two agents as pilots, runs 100 tasks
through them, shows the tree, then stops everything. Ctrl-C (or SIGTERM) stops
every service it started and removes the directory (exit 130, or 143).

  --pilots URL   where the pilots run: local:// (default) or slurm://[partition]
                 on a host with Slurm (e.g. after scripts/slurm-testcluster up)
  --keep         leave the directory for a look at the logs
`;

/** Runs `fabricd demo`. */
export async function demoCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("demo", args, {
    keep: { type: "boolean" },
    pilots: { type: "string" },
  });
  noMoreArgs("demo", parsed.positionals);
  if (parsed.flags.help) {
    console.log(DEMO_HELP);
    return EXIT.OK;
  }
  const dir = await Deno.makeTempDir({ prefix: "fabricd-demo-" });
  const fabricPath = join(dir, "fabric.yaml");
  const step = (text: string): void => console.log(`\n== ${text}`);
  let stop: (() => Promise<number>) | null = null;
  let starting: Promise<unknown> = Promise.resolve();
  // Ctrl-C (or SIGTERM) stops the services and removes the directory, key
  // included, before the demo exits 130 (143): nothing is left behind.
  const cleanUp = async (): Promise<void> => {
    // Only waited for here; its failure is reported where it is awaited.
    await starting.catch(() => {});
    if (stop) await stop().catch(() => 0);
    stop = null;
    if (parsed.flags.keep) console.log(`\nkept ${dir}`);
    else {
      await Deno.remove(dir, { recursive: true }).catch((error) =>
        log("demo").debug("Cannot remove {dir}: {error}", { dir, error: String(error) })
      );
    }
  };
  let interrupted: Promise<void> | null = null;
  const onSignal = (signal: Deno.Signal, code: number) => (): void => {
    if (interrupted) return;
    console.log(`\n${signal}: stopping the demo's services...`);
    interrupted = cleanUp().finally(() => Deno.exit(code));
  };
  const signals: [Deno.Signal, () => void][] = [
    ["SIGINT", onSignal("SIGINT", 130)],
    ["SIGTERM", onSignal("SIGTERM", 143)],
  ];
  for (const [signal, handler] of signals) Deno.addSignalListener(signal, handler);
  try {
    step(`fabricd init (in ${dir})`);
    const fabric = await initFabric(fabricPath);
    console.log(`fabric ${fabric.fingerprint}`);
    step("fabricd up: a registry on SQLite and a root spawner");
    let started = performance.now();
    const startingFabric = startLocalFabric(fabricPath, fabric, { dir, port: 0, heartbeatMs: 500 });
    starting = startingFabric.then((local) => {
      stop = () => local.stopAll("demo finished");
    });
    const local = await startingFabric;
    stop = () => local.stopAll("demo finished");
    console.log(`up in ${Math.round(performance.now() - started)} ms`);
    const spawn = async (via: { id: string; url: string }, role: string): Promise<SpawnResult> => {
      started = performance.now();
      const result = await local.client.call<SpawnResult>(via, {
        method: "POST",
        path: "/v1/spawn",
        body: { role, on: "local://" },
      }, { timeoutMs: 60_000 });
      const ms = Math.round(performance.now() - started);
      console.log(
        `${via.id} spawned ${result.id}: ${result.state} in ${ms} ms (one-time password, sealed keys, signed configure)`,
      );
      return result;
    };
    step("grow the fabric: each new service is spawned by a running one");
    const a = await spawn(local.spawner, "spawner");
    const b = await spawn(local.spawner, "spawner");
    const c = await spawn({ id: a.id, url: a.endpoint }, "spawner");
    step("open a session served by two services");
    for (const id of [b, c]) {
      await local.client.call({ id: id.id, url: id.endpoint }, {
        method: "POST",
        path: "/v1/sessions/demo-session",
      });
    }
    console.log(`session demo-session -> ${b.id}, ${c.id}`);
    step("run 100 tasks: a pilot manager, a queue, a pub/sub service and two pilots (agents)");
    const pilotsOn = stringFlag(parsed, "pilots");
    const tasks = await runDemoTasks(local, 100, pilotsOn ? { pilotsOn } : {});
    const perAgent = Object.entries(tasks.byAgent).map(([id, n]) => `${id}: ${n}`).join(", ");
    console.log(
      `${tasks.done} DONE, ${tasks.failed} failed in ${Math.round(tasks.ms)} ms ` +
        `(${Math.round(tasks.done / (tasks.ms / 1000))} tasks/s; ${perAgent})`,
    );
    if (tasks.done !== 100) {
      throw new CliError(`Only ${tasks.done} of 100 tasks are DONE`, EXIT.FAILURE);
    }
    step("fabricd status");
    console.log(renderTree(await local.registry.list(), Date.now()));
    step("a request signed with another key is refused");
    const forged = await fetch(new URL("/v1/status", a.endpoint));
    console.log(`unsigned GET /v1/status -> ${forged.status} ${(await forged.json()).error}`);
    step("fabricd stop --all");
    const pids = (await local.registry.list()).map((r) => r.pid).filter((p) => p > 0);
    const stopped = await stop();
    stop = null;
    console.log(`stopped ${stopped} services`);
    const left = await stillRunning(pids);
    if (left.length > 0) {
      throw new CliError(`Processes still running after stop: ${left.join(", ")}`, EXIT.FAILURE);
    }
    console.log("no process left behind");
    return EXIT.OK;
  } finally {
    // After a signal, the steps under way fail as their services stop: the
    // handler's clean-up ends the process, not their error.
    if (interrupted) await interrupted;
    for (const [signal, handler] of signals) Deno.removeSignalListener(signal, handler);
    await cleanUp();
  }
}

async function stillRunning(pids: number[]): Promise<number[]> {
  const deadline = Date.now() + 5000;
  let alive = pids;
  while (Date.now() < deadline) {
    alive = await running(alive);
    if (alive.length === 0) return [];
    await sleep(50);
  }
  return alive;
}

/**
 * Which of `pids` still run (zombies do not count), from `ps`: reading
 * another process's `/proc` entry needs more than the permissions fabricd
 * runs with.
 */
async function running(pids: number[]): Promise<number[]> {
  if (pids.length === 0) return [];
  const out = await new Deno.Command("ps", {
    args: ["-o", "pid=,stat=", "-p", pids.join(",")],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter(([pid, stat]) => pid && stat && !stat.startsWith("Z"))
    .map(([pid]) => Number(pid));
}
