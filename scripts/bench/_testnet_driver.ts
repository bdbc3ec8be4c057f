/**
 * The driver of the SSH benchmarks (`ssh-hop-warm`, `image-copy-cold`,
 * `grow-chain`): a program run INSIDE a testnet host (`scripts/testnet exec
 * desktop env DENO_DIR=... deno run -A scripts/bench/_testnet_driver.ts
 * COMMAND ...`, see `runDriver` in `_testnet_host.ts`). It does the timed work
 * with the project's own code (`FabricClient`, `shipImage`, `SshConnection`),
 * prints progress on standard error and one JSON line on standard output (the
 * shapes are in `_testnet_common.ts`).
 *
 * Commands (FABRIC is a fabric file, DIR a scratch directory):
 *
 *     wait FABRIC                 until the root spawner is ALIVE; prints the records
 *     hop-warm FABRIC HOST N      one bridge on ssh://HOST (warm-up), then N timed spawns of a
 *                                 spawner on ssh://HOST via the root spawner, each stopped after,
 *                                 interleaved with N plain `ssh HOST true`
 *     bare-run N                  N timed `deno run --quiet empty.js` on this host, with the deno
 *                                 of the newest image in ~/.cache/fabricd (else this deno)
 *     ship DIR HOST N IMAGE_DIR   N cold copies of the image in IMAGE_DIR to HOST (cache emptied
 *                                 before each) against plain `cat FILES | ssh HOST 'cat >/dev/null'`
 *                                 (`_testnet_ship.ts`)
 *     grow FABRIC                 bridge on gateway, bridge on head, spawner on compute1
 *     stop FABRIC ID...           stops these services, children first; waits for their processes
 * @module
 */
import { join } from "node:path";
import { FabricRequestError, type Target } from "../../src/client/fabric_client.ts";
import { type FabricContext, loadContext, targetOf } from "../../src/cli/context.ts";
import { stopServices } from "../../src/cli/stop_services.ts";
import type { ServiceRecord, SpawnResult, Transition } from "../../src/types/mod.ts";
import { round, waitExited } from "./_harness.ts";
import {
  type BareRunOutput,
  BenchStepError,
  type GrowOutput,
  type HopWarmOutput,
  listDir,
  type LiteRecord,
  poll,
  progress,
  type SpawnPhases,
  type SpawnSample,
  timedCommand,
} from "./_testnet_common.ts";
import { shipCommand } from "./_testnet_ship.ts";

function messageOf(error: unknown): string {
  if (error instanceof FabricRequestError) {
    const exit = typeof error.body.exitCode === "number"
      ? ` (child exit ${error.body.exitCode})`
      : "";
    return `${error.message}${exit}`;
  }
  return error instanceof Error ? error.message : String(error);
}

function lite(record: ServiceRecord): LiteRecord {
  const { id, role, host, pid, state, route } = record;
  return { id, role, host, pid, state, route };
}

async function allRecords(context: FabricContext): Promise<LiteRecord[]> {
  return (await context.registry.list()).map(lite);
}

function phasesOf(transitions: Transition[], sentAt: number): SpawnPhases {
  const at = (state: string): number => transitions.find((t) => t.to === state)?.at ?? NaN;
  return {
    requestMs: at("LAUNCHING") - sentAt,
    launchMs: at("BOOTSTRAPPING") - at("LAUNCHING"),
    configureMs: at("ALIVE") - at("BOOTSTRAPPING"),
  };
}

/**
 * One signed `POST /v1/spawn` to `via`, timed from the request to its answer.
 * @throws {BenchStepError} when the spawn fails or does not answer ALIVE.
 */
async function timedSpawn(
  context: FabricContext,
  via: Target,
  role: string,
  on: string,
): Promise<SpawnSample> {
  const sentAt = Date.now();
  const started = performance.now();
  let result: SpawnResult;
  try {
    result = await context.client.call<SpawnResult>(via, {
      method: "POST",
      path: "/v1/spawn",
      body: { role, on, sessions: [] },
    }, { timeoutMs: 120_000 });
  } catch (error) {
    const id = error instanceof FabricRequestError && typeof error.body.id === "string"
      ? ` (service ${error.body.id})`
      : "";
    throw new BenchStepError(
      `spawn ${role} on ${on} via ${via.id} failed${id}: ${messageOf(error)}`,
    );
  }
  const ms = performance.now() - started;
  if (result.state !== "ALIVE") {
    throw new BenchStepError(`spawn ${role} on ${on} answered state ${result.state}`);
  }
  const found = await context.registry.get(result.id);
  return {
    id: result.id,
    on,
    via: via.id,
    ms,
    ...phasesOf(found?.transitions ?? [], sentAt),
  };
}

/** Stops `ids` (children first), then waits for their processes to end. */
async function stopAndWait(context: FabricContext, ids: string[]): Promise<void> {
  const records = await context.registry.list();
  const pids = records.filter((r) => ids.includes(r.id)).map((r) => r.pid);
  await stopServices(context.client, context.registry, { reason: "benchmark step done", ids });
  // The testnet shares one PID namespace, so /proc here shows every host's processes.
  const left = await waitExited(pids, 10_000);
  if (left.length > 0) progress(`still running 10 s after stop: pid ${left.join(", ")}`);
}

async function waitCommand(fabric: string): Promise<LiteRecord[]> {
  let last = "";
  const records = await poll(async (): Promise<LiteRecord[] | undefined> => {
    try {
      const context = await loadContext(fabric);
      const spawner = context.fabric.spawner;
      if (spawner) {
        const found = await context.registry.get(spawner.id);
        if (found?.record.state === "ALIVE") return await allRecords(context);
        last = `root spawner is ${found?.record.state ?? "not registered"}`;
      } else {
        last = "fabric file names no spawner yet";
      }
    } catch (error) {
      last = messageOf(error);
    }
    return undefined;
  }, { timeoutMs: 60_000, intervalMs: 200 });
  if (records === undefined) {
    throw new BenchStepError(`fabric did not come up within 60 s: ${last}`);
  }
  return records;
}

function sshTrue(host: string): Promise<number> {
  // A new connection each time, whatever the configuration says.
  return timedCommand(`ssh ${host} true`, [
    "ssh",
    "-o",
    "ControlMaster=no",
    "-o",
    "ControlPath=none",
    host,
    "true",
  ]);
}

/** A ControlMaster of the driver's own to `host`, for `ssh true` over an open connection. */
async function openMaster(host: string): Promise<{ socket: string; close(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "fabricd-bench-cm-" });
  const socket = join(dir, "master");
  const ssh = (args: string[]) =>
    new Deno.Command("ssh", { args: ["-S", socket, ...args], stdin: "null", stdout: "null" })
      .output();
  const open = await ssh(["-o", "ControlMaster=yes", "-o", "ControlPersist=120", "-fN", host]);
  if (!open.success) throw new BenchStepError(`cannot open a ControlMaster to ${host}`);
  return {
    socket,
    close: async () => {
      await ssh(["-O", "exit", host]).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

async function hopWarmCommand(fabric: string, host: string, runs: number): Promise<HopWarmOutput> {
  const context = await loadContext(fabric);
  const root = context.fabric.spawner!;
  const on = `ssh://${host}`;
  progress(`warm-up: bridge on ${on} (image copy if the cache is cold, ControlMaster)`);
  const warmup = await timedSpawn(context, root, "bridge", on);
  progress(`warm-up bridge ${warmup.id} ALIVE in ${round(warmup.ms, 0)} ms (kept running)`);
  await sshTrue(host); // known_hosts, page cache
  const master = await openMaster(host);
  const spawns: SpawnSample[] = [];
  const sshTrueMs: number[] = [];
  const sshTrueMasterMs: number[] = [];
  const failures: string[] = [];
  for (let attempt = 1; spawns.length < runs && attempt <= runs + 3; attempt++) {
    sshTrueMs.push(await sshTrue(host));
    sshTrueMasterMs.push(
      await timedCommand(`ssh -S MASTER ${host} true`, ["ssh", "-S", master.socket, host, "true"]),
    );
    try {
      const sample = await timedSpawn(context, root, "spawner", on);
      spawns.push(sample);
      progress(
        `run ${attempt}: spawn ${round(sample.ms, 0)} ms (request ${
          round(sample.requestMs, 0)
        }, launch->bootstrap ${round(sample.launchMs, 0)}, ->ALIVE ${
          round(sample.configureMs, 0)
        }), ssh ${host} true ${round(sshTrueMs.at(-1)!, 0)} ms`,
      );
      await stopAndWait(context, [sample.id]);
    } catch (error) {
      failures.push(messageOf(error));
      progress(`run ${attempt}: FAILED: ${messageOf(error)}`);
      if (failures.length >= 3) break;
    }
  }
  await master.close();
  return {
    warmup,
    spawns,
    sshTrueMs,
    sshTrueMasterMs,
    failures,
    records: await allRecords(context),
  };
}

/** The `deno` of the newest complete image in `cache`, else this process's. */
async function newestImageDeno(cache: string): Promise<string> {
  let deno = Deno.execPath();
  let newest = 0;
  for (const name of await listDir(cache)) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue;
    const candidate = join(cache, name, "deno");
    const marker = await Deno.stat(join(cache, name, ".complete")).catch(() => null);
    const stat = await Deno.stat(candidate).catch(() => null);
    if (marker && stat && (marker.mtime?.getTime() ?? 0) > newest) {
      newest = marker.mtime?.getTime() ?? 0;
      deno = candidate;
    }
  }
  return deno;
}

async function bareRunCommand(runs: number): Promise<BareRunOutput> {
  const home = Deno.env.get("HOME") ?? "/root";
  const deno = await newestImageDeno(join(home, ".cache", "fabricd"));
  const dir = await Deno.makeTempDir({ prefix: "fabricd-bench-bare-" });
  try {
    const script = join(dir, "empty.js");
    await Deno.writeTextFile(script, "\n");
    // As a service started over ssh sees it: no DENO_DIR, the host's own home.
    const env = { HOME: home, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };
    const once = async (): Promise<number> => {
      const started = performance.now();
      const status = await new Deno.Command(deno, {
        args: ["run", "--quiet", script],
        clearEnv: true,
        env,
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn().status;
      const ms = performance.now() - started;
      if (!status.success) throw new BenchStepError(`${deno} run empty.js exited ${status.code}`);
      return ms;
    };
    await once(); // warm-up, not counted
    const samples: number[] = [];
    for (let i = 0; i < runs; i++) samples.push(await once());
    progress(`bare deno run (${deno}): ${samples.map((s) => round(s, 0)).join(", ")} ms`);
    return { deno, samples };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function growCommand(fabric: string): Promise<GrowOutput> {
  const context = await loadContext(fabric);
  const chain: [string, string][] = [
    ["bridge", "ssh://gateway"],
    ["bridge", "ssh://head"],
    ["spawner", "ssh://compute1"],
  ];
  const hops: SpawnSample[] = [];
  let via: Target = context.fabric.spawner!;
  for (const [role, on] of chain) {
    const sample = await timedSpawn(context, via, role, on);
    hops.push(sample);
    progress(
      `${role} on ${on} via ${via.id}: ${sample.id} ALIVE in ${
        round(sample.ms, 0)
      } ms (launch->bootstrap ${round(sample.launchMs, 0)}, ->ALIVE ${
        round(sample.configureMs, 0)
      })`,
    );
    via = await targetOf(context, sample.id); // not timed: a registry lookup, like the CLI's
  }
  return { hops, records: await allRecords(context) };
}

async function stopCommand(fabric: string, ids: string[]): Promise<LiteRecord[]> {
  const context = await loadContext(fabric);
  await stopAndWait(context, ids);
  return await allRecords(context);
}

function positive(text: string | undefined, what: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) {
    throw new BenchStepError(`${what} must be a positive integer`);
  }
  return n;
}

/**
 * Runs one driver command (`args` is the command line, see the module
 * comment), prints its JSON answer on standard output and returns the exit
 * code: 0 done, 1 failed (the reason went to standard error), 64 usage.
 */
export async function testnetDriver(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  let answer: unknown;
  try {
    switch (command) {
      case "wait":
        answer = await waitCommand(rest[0]!);
        break;
      case "hop-warm":
        answer = await hopWarmCommand(rest[0]!, rest[1]!, positive(rest[2], "N"));
        break;
      case "bare-run":
        answer = await bareRunCommand(positive(rest[0], "N"));
        break;
      case "ship":
        answer = await shipCommand(rest[1]!, {
          dir: rest[0]!,
          runs: positive(rest[2], "N"),
          imageDir: rest[3] ?? "",
        });
        break;
      case "grow":
        answer = await growCommand(rest[0]!);
        break;
      case "stop":
        answer = await stopCommand(rest[0]!, rest.slice(1));
        break;
      default:
        console.error(`Unknown driver command "${command}": see the module comment`);
        return 64;
    }
  } catch (error) {
    progress(`FAILED: ${messageOf(error)}`);
    return 1;
  }
  console.log(JSON.stringify(answer));
  return 0;
}

if (import.meta.main) Deno.exit(await testnetDriver(Deno.args));
