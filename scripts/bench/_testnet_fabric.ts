/**
 * The test-network side of the SSH benchmarks (`ssh-hop-warm`,
 * `image-copy-cold`, `grow-chain`), in two halves:
 *
 * - run as a program INSIDE a testnet host (`scripts/testnet exec desktop env
 *   DENO_DIR=... deno run -A scripts/bench/_testnet_fabric.ts COMMAND ...`), it
 *   is the driver that does the timed work with the project's own code
 *   (`FabricClient`, `shipImage`, `SshConnection`), prints progress on standard
 *   error and one JSON line on standard output;
 * - imported on the machine itself, it starts `fabricd up` inside the desktop,
 *   runs the driver, empties image caches, prints log tails on failure, and
 *   stops (then kills) every process the benchmark started.
 *
 * The testnet is brought up (idempotent) and deliberately left up: there is one
 * testnet per machine and others may be using it (docs/testnet.md).
 *
 * Driver commands (FABRIC is a fabric file, DIR a scratch directory):
 *
 *     wait FABRIC                 until the root spawner is ALIVE; prints the records
 *     hop-warm FABRIC HOST N      one bridge on ssh://HOST (warm-up), then N timed spawns of a
 *                                 spawner on ssh://HOST via the root spawner, each stopped after,
 *                                 interleaved with N plain `ssh HOST true`
 *     bare-run N                  N timed `deno run --quiet empty.js` on this host, with the deno
 *                                 of the newest image in ~/.cache/fabricd (else this deno)
 *     ship DIR HOST N             N cold copies of this fabricd's image to HOST (cache emptied
 *                                 before each) against plain `ssh HOST 'cat >/dev/null' <FILE`
 *     grow FABRIC                 bridge on gateway, bridge on head, spawner on compute1
 *     stop FABRIC ID...           stops these services, children first; waits for their processes
 * @module
 */
import { join } from "node:path";
import { FabricRequestError, type Target } from "../../src/client/fabric_client.ts";
import { type FabricContext, loadContext, targetOf } from "../../src/cli/context.ts";
import { stopServices } from "../../src/cli/local_fabric.ts";
import { selfImage } from "../../src/image/self_image.ts";
import { shipImage, type ShipResult } from "../../src/image/ship.ts";
import { SshConnection } from "../../src/launchers/ssh_connection.ts";
import type { ServiceRecord, SpawnResult, Transition } from "../../src/types/mod.ts";
import {
  checkTestnet,
  TESTNET_HOSTS,
  TESTNET_SCRIPT,
  testnetExec,
  type TestnetHost,
  testnetUp,
} from "../../tests/e2e/_testnet.ts";
import { isRunning, round, say, sleep, waitExited } from "./_harness.ts";

/** This file, as run by the driver commands. */
const DRIVER = new URL(import.meta.url).pathname;
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
/** The machine's Deno cache: inside the hosts, HOME (and with it ~/.cache/deno) moves. */
export const DENO_DIR = Deno.env.get("DENO_DIR") ??
  `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
/** The RADICAL-Pilot anchor the fabric replaces: a pilot's virtualenv bootstrap. */
export const RADICAL_PILOT_ANCHOR = "RADICAL-Pilot: 62-97 s per pilot for a virtualenv bootstrap";

// ---------------------------------------------------------------------------
// What both halves share.

/** The part of a registry record the benchmarks use. */
export interface LiteRecord {
  id: string;
  role: string;
  host: string;
  pid: number;
  state: string;
  route: string[];
}

/** Time between registry transitions of one spawn, ms (NaN when one is missing). */
export interface SpawnPhases {
  /** Request sent -> LAUNCHING recorded (client to spawner to registry). */
  requestMs: number;
  /** LAUNCHING -> BOOTSTRAPPING: ssh prepare (image probe, forwards), launch, remote start, key hand-over, local forward. */
  launchMs: number;
  /** BOOTSTRAPPING -> ALIVE: configure call, registration. */
  configureMs: number;
}

/** One timed spawn request. */
export interface SpawnSample extends SpawnPhases {
  id: string;
  on: string;
  via: string;
  /** Wall time of the signed `POST /v1/spawn` until its ALIVE answer, ms. */
  ms: number;
}

/** What `hop-warm` prints. */
export interface HopWarmOutput {
  warmup: SpawnSample;
  spawns: SpawnSample[];
  sshTrueMs: number[];
  failures: string[];
  records: LiteRecord[];
}

/** What `bare-run` prints. */
export interface BareRunOutput {
  deno: string;
  samples: number[];
}

/** One cold copy and its baselines, as `ship` prints them. */
export interface ShipRun {
  /** `shipImage` wall time: probe, compress + send + decompress each file, verify, rename. */
  shipMs: number;
  result: ShipResult;
  /** Plain `ssh HOST 'cat >/dev/null' <FILE` per file over the same master, ms. */
  catNullMs: number[];
  /** Plain `ssh HOST 'cat >FILE'` per file (then removed) over the same master, ms. */
  catDiskMs: number[];
}

/** What `ship` prints. */
export interface ShipOutput {
  kind: string;
  hash: string;
  files: { name: string; size: number }[];
  /** Making the image (deno bundle from source, hashing), once, not counted. */
  imageMs: number;
  /** Opening the ControlMaster connection, once, not counted. */
  openMs: number;
  runs: ShipRun[];
  /** Parts of a copy, measured once after the runs (informative). */
  parts: {
    /** Local `zstd -1 -T0` (or gzip -1) of each file to /dev/null, ms. */
    compressMs: number[];
    /** Remote `sha256sum` of the installed files (page cache warm, as after a copy), ms. */
    verifyMs: number;
    /** One empty command over the master (`true`), ms. */
    execMs: number;
  };
}

/** What `grow` prints. */
export interface GrowOutput {
  hops: SpawnSample[];
  records: LiteRecord[];
}

/** An error that says which benchmark step failed. */
export class BenchStepError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BenchStepError";
  }
}

// ---------------------------------------------------------------------------
// The driver: runs inside a testnet host.

function progress(text: string): void {
  const name = Deno.env.get("BENCH_NAME") ?? "bench";
  console.error(`[${name}@${Deno.hostname()}] ${text}`);
}

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
  const deadline = Date.now() + 60_000;
  let last = "";
  while (Date.now() < deadline) {
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
    await sleep(200);
  }
  throw new BenchStepError(`fabric did not come up within 60 s: ${last}`);
}

async function sshTrue(host: string): Promise<number> {
  const started = performance.now();
  const out = await new Deno.Command("ssh", {
    // A new connection each time, whatever the configuration says.
    args: ["-o", "ControlMaster=no", "-o", "ControlPath=none", host, "true"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - started;
  if (!out.success) {
    throw new BenchStepError(
      `ssh ${host} true exited ${out.code}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return ms;
}

async function hopWarmCommand(fabric: string, host: string, runs: number): Promise<HopWarmOutput> {
  const context = await loadContext(fabric);
  const root = context.fabric.spawner!;
  const on = `ssh://${host}`;
  progress(`warm-up: bridge on ${on} (image copy if the cache is cold, ControlMaster)`);
  const warmup = await timedSpawn(context, root, "bridge", on);
  progress(`warm-up bridge ${warmup.id} ALIVE in ${round(warmup.ms, 0)} ms (kept running)`);
  await sshTrue(host); // known_hosts, page cache
  const spawns: SpawnSample[] = [];
  const sshTrueMs: number[] = [];
  const failures: string[] = [];
  for (let attempt = 1; spawns.length < runs && attempt <= runs + 3; attempt++) {
    sshTrueMs.push(await sshTrue(host));
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
  return { warmup, spawns, sshTrueMs, failures, records: await allRecords(context) };
}

/** Names in directory `path`, or none when it cannot be read. */
async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(path)) names.push(entry.name);
  } catch {
    // Missing or unreadable: nothing to list.
  }
  return names;
}

async function bareRunCommand(runs: number): Promise<BareRunOutput> {
  const home = Deno.env.get("HOME") ?? "/root";
  const cache = join(home, ".cache", "fabricd");
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

async function timed(
  cmd: string,
  args: string[],
  what: string,
): Promise<number> {
  const started = performance.now();
  const out = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - started;
  if (!out.success) {
    throw new BenchStepError(
      `${what} exited ${out.code}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return ms;
}

async function shipCommand(dir: string, host: string, runs: number): Promise<ShipOutput> {
  let started = performance.now();
  const image = await selfImage({ cacheDir: join(dir, "cache") });
  const imageMs = performance.now() - started;
  const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;
  progress(
    `image ${image.kind} ${image.hash.slice(0, 12)}: ${
      image.files.map((f) => `${f.name} ${mb(f.size)}`).join(", ")
    } (made in ${round(imageMs, 0)} ms, not counted)`,
  );
  const controlDir = join(dir, "ssh-ship");
  const ssh = new SshConnection({ host }, { controlDir });
  try {
    started = performance.now();
    await ssh.open();
    const openMs = performance.now() - started;
    const sockets: string[] = [];
    for await (const entry of Deno.readDir(controlDir)) sockets.push(join(controlDir, entry.name));
    if (sockets.length !== 1) {
      throw new BenchStepError(`expected one control socket in ${controlDir}, found ${sockets}`);
    }
    const socket = sockets[0]!;
    // Plain ssh riding on the very same master connection.
    const plainSsh = (remote: string, file: string, what: string): Promise<number> =>
      timed(
        "sh",
        [
          "-c",
          'exec ssh -S "$1" -o ControlMaster=no -o BatchMode=yes "$2" "$3" <"$4"',
          "sh",
          socket,
          host,
          remote,
          file,
        ],
        what,
      );
    progress(`ControlMaster to ${host} open in ${round(openMs, 0)} ms (not counted)`);
    const out: ShipRun[] = [];
    for (let i = 0; i < runs; i++) {
      const emptied = await ssh.exec(
        'rm -rf "$HOME/.cache/fabricd" && test ! -e "$HOME/.cache/fabricd" && echo EMPTY',
      );
      if (!emptied.stdout.includes("EMPTY")) {
        throw new BenchStepError(`cannot empty ~/.cache/fabricd on ${host}: ${emptied.stderr}`);
      }
      const doShip = async (): Promise<[number, ShipResult]> => {
        const t = performance.now();
        const result = await shipImage(image, ssh, { progress: false });
        const ms = performance.now() - t;
        if (!result.copied) throw new BenchStepError(`the image was already on ${host}`);
        return [ms, result];
      };
      const doCat = async (): Promise<[number[], number[]]> => {
        const toNull: number[] = [];
        const toDisk: number[] = [];
        for (const file of image.files) {
          toNull.push(await plainSsh("cat >/dev/null", file.path, `ssh cat ${file.name}`));
        }
        for (const file of image.files) {
          const blob = `"$HOME/.cache/fabricd-bench-${file.name}"`;
          toDisk.push(await plainSsh(`cat >${blob}`, file.path, `ssh cat >file ${file.name}`));
          await ssh.exec(`rm -f ${blob}`);
        }
        return [toNull, toDisk];
      };
      // Alternate the order, so drift of the machine's load hits both alike.
      let shipped: [number, ShipResult];
      let cats: [number[], number[]];
      if (i % 2 === 0) {
        shipped = await doShip();
        cats = await doCat();
      } else {
        cats = await doCat();
        shipped = await doShip();
      }
      const [shipMs, result] = shipped;
      const [catNullMs, catDiskMs] = cats;
      const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
      progress(
        `run ${i + 1}: ship ${round(shipMs, 0)} ms (${result.compression}, ${
          mb(result.sent)
        } sent of ${mb(result.bytes)}); ssh cat >/dev/null ${
          round(sum(catNullMs), 0)
        } ms; ssh cat >file ${round(sum(catDiskMs), 0)} ms`,
      );
      out.push({ shipMs, result, catNullMs, catDiskMs });
    }
    const compression = out[0]?.result.compression ?? "gzip";
    const compressMs: number[] = [];
    for (const file of image.files) {
      const args = compression === "zstd"
        ? ["-c", `exec zstd -1 -T0 -q -c "$1" >/dev/null`, "sh", file.path]
        : ["-c", `exec gzip -1 -c "$1" >/dev/null`, "sh", file.path];
      compressMs.push(await timed("sh", args, `${compression} ${file.name}`));
    }
    started = performance.now();
    const verify = await ssh.exec(
      `cd "$HOME/.cache/fabricd/${image.hash}" && sha256sum ${
        image.files.map((f) => f.name).join(" ")
      } >/dev/null`,
    );
    const verifyMs = performance.now() - started;
    if (verify.code !== 0) throw new BenchStepError(`remote sha256sum failed: ${verify.stderr}`);
    started = performance.now();
    await ssh.exec("true");
    const execMs = performance.now() - started;
    return {
      kind: image.kind,
      hash: image.hash,
      files: image.files.map((f) => ({ name: f.name, size: f.size })),
      imageMs,
      openMs,
      runs: out,
      parts: { compressMs, verifyMs, execMs },
    };
  } finally {
    await ssh.close();
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

async function driverMain(args: string[]): Promise<number> {
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
        answer = await shipCommand(rest[0]!, rest[1]!, positive(rest[2], "N"));
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

// ---------------------------------------------------------------------------
// The machine's side.

/**
 * Checks that the testnet can run here and brings it up (idempotent). It is
 * left up afterwards on purpose: others may be using it.
 * @throws {BenchStepError} when the testnet cannot run (not root, no namespaces).
 */
export async function prepareTestnet(name: string): Promise<void> {
  const prereq = await checkTestnet();
  if (!prereq.ok) throw new BenchStepError(`the test network cannot run here: ${prereq.reason}`);
  await testnetUp();
  say(name, "testnet is up (scripts/testnet up; it will be left up afterwards)");
}

/** Why a driver run failed, with what the testnet looks like now. */
async function explainFailure(name: string, what: string, code: number): Promise<BenchStepError> {
  const status = await new Deno.Command(TESTNET_SCRIPT, { args: ["status"], stdout: "piped" })
    .output()
    .catch(() => null);
  const down = status !== null && !status.success;
  if (down) {
    say(
      name,
      "the testnet is not (fully) up any more: did another test run `scripts/testnet down`?",
    );
  }
  return new BenchStepError(`${what} exited ${code}${down ? " (testnet went down)" : ""}`);
}

/**
 * Runs a driver command on `host` and returns its JSON answer. Its progress
 * goes straight to this process's standard error.
 * @throws {BenchStepError} when it fails or takes longer than `timeoutMs`.
 */
export async function runDriver<T>(
  name: string,
  host: TestnetHost,
  args: string[],
  timeoutMs: number,
): Promise<T> {
  const child = new Deno.Command(TESTNET_SCRIPT, {
    args: [
      "exec",
      host,
      "env",
      `DENO_DIR=${DENO_DIR}`,
      `BENCH_NAME=${name}`,
      Deno.execPath(),
      "run",
      "--quiet",
      "--allow-all",
      DRIVER,
      ...args,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    say(name, `driver "${args[0]}" on ${host} still running after ${timeoutMs} ms: killing it`);
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, timeoutMs);
  const out = await child.output().finally(() => clearTimeout(timer));
  const last = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
  if (timedOut) throw new BenchStepError(`driver "${args[0]}" on ${host} timed out`);
  if (!out.success) throw await explainFailure(name, `driver "${args[0]}" on ${host}`, out.code);
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new BenchStepError(`driver "${args[0]}" on ${host} printed no JSON: ${last}`);
  }
}

/** The home directory of `host` inside the testnet. */
async function homeOf(host: TestnetHost): Promise<string> {
  const out = await testnetExec(host, ["sh", "-c", 'printf %s "$HOME"']);
  if (out.code !== 0 || !out.stdout.startsWith("/")) {
    throw new BenchStepError(`cannot find the home of ${host}: ${out.stderr.trim()}`);
  }
  return out.stdout;
}

/** A process seen in /proc: its PID, start time (to survive PID reuse) and command line. */
interface ProcRef {
  pid: number;
  start: string;
  cmdline: string;
}

function readProc(pid: number): (ProcRef & { ppid: number }) | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").join(" ").trim();
    return { pid, ppid: Number(fields[1]), start: fields[19] ?? "", cmdline };
  } catch {
    return null;
  }
}

function allProcs(): (ProcRef & { ppid: number })[] {
  const procs = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const proc = readProc(Number(entry.name));
    if (proc) procs.push(proc);
  }
  return procs;
}

function stillThere(ref: ProcRef): boolean {
  const now = readProc(ref.pid);
  return now !== null && now.start === ref.start && isRunning(ref.pid);
}

/**
 * A fabric grown from the testnet's desktop: `fabricd up` running inside it
 * (with the machine's Deno cache), a fabric file in a scratch directory, and
 * bookkeeping of every process it started, so that all of them can be
 * stopped and, if need be, killed at the end.
 */
export class TestnetFabric {
  readonly name: string;
  readonly dir: string;
  readonly fabric: string;
  #up: Deno.ChildProcess;
  /** Every service the fabric ever had, by ID. */
  #records = new Map<string, LiteRecord>();
  /** Processes started by our services (ssh masters and sessions), seen while they ran. */
  #children = new Map<string, ProcRef>();
  #services = new Map<string, ProcRef>();

  private constructor(name: string, dir: string, up: Deno.ChildProcess) {
    this.name = name;
    this.dir = dir;
    this.fabric = join(dir, "fabric.yaml");
    this.#up = up;
  }

  /**
   * Starts `fabricd up` in the desktop and waits for its root spawner.
   * @throws {BenchStepError} when it does not come up (log tails are printed).
   */
  static async start(name: string): Promise<TestnetFabric> {
    const dir = await Deno.makeTempDir({ prefix: "fabricd-bench-net-" });
    const script = 'exec "$@" >"$LOG" 2>&1';
    const up = new Deno.Command(TESTNET_SCRIPT, {
      args: [
        "exec",
        "desktop",
        "env",
        `DENO_DIR=${DENO_DIR}`,
        `LOG=${join(dir, "up.log")}`,
        "sh",
        "-c",
        script,
        "sh",
        Deno.execPath(),
        "run",
        "--quiet",
        "--allow-all",
        MAIN,
        "up",
        "--dir",
        dir,
        "--heartbeat-ms",
        "1000",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const fabric = new TestnetFabric(name, dir, up);
    say(name, `fabricd up in the desktop, state in ${dir}`);
    const started = performance.now();
    try {
      fabric.remember(
        await fabric.driver<LiteRecord[]>("desktop", ["wait", fabric.fabric], 90_000),
      );
    } catch (error) {
      await fabric.showLogs([]);
      await fabric.shutDown();
      throw error;
    }
    say(name, `fabric up (root spawner ALIVE) after ${round(performance.now() - started, 0)} ms`);
    return fabric;
  }

  /** Runs a driver command on `host` (see the module comment). */
  driver<T>(host: TestnetHost, args: string[], timeoutMs: number): Promise<T> {
    return runDriver<T>(this.name, host, args, timeoutMs);
  }

  /** Notes records (and the processes they and their children are) for the clean-up. */
  remember(records: LiteRecord[]): void {
    for (const record of records) {
      this.#records.set(record.id, record);
      const proc = record.pid > 0 ? readProc(record.pid) : null;
      if (proc && proc.cmdline.includes(record.id)) this.#services.set(record.id, proc);
    }
    this.noteChildren();
  }

  /**
   * Notes every process descending from one of our services or from `fabricd
   * up` (ssh masters, launch sessions), while they are still attached to it.
   */
  noteChildren(): void {
    const roots = new Set([...this.#services.values()].map((p) => p.pid));
    if (this.#up.pid > 0) roots.add(this.#up.pid);
    const procs = allProcs();
    let grew = true;
    while (grew) {
      grew = false;
      for (const proc of procs) {
        if (roots.has(proc.ppid) && !roots.has(proc.pid)) {
          roots.add(proc.pid);
          grew = true;
          const key = `${proc.pid}/${proc.start}`;
          if (!this.#children.has(key)) this.#children.set(key, proc);
        }
      }
    }
  }

  /** IDs of the services we know of on `host`, for log tails. */
  idsOn(host: string): string[] {
    return [...this.#records.values()].filter((r) => r.host === host).map((r) => r.id);
  }

  /**
   * Prints the ends of the desktop's fabric logs and of the logs in
   * `~/.cache/fabricd/logs/` on each of `hosts` (ours by ID, else the newest).
   */
  async showLogs(hosts: TestnetHost[]): Promise<void> {
    const tail = async (path: string): Promise<string> => {
      const text = await Deno.readTextFile(path).catch(() => "");
      return text.trim().split("\n").slice(-12).map((l) => `    ${l.slice(0, 400)}`).join("\n");
    };
    say(this.name, `--- ${join(this.dir, "up.log")}:\n${await tail(join(this.dir, "up.log"))}`);
    for (const name of await listDir(join(this.dir, "logs"))) {
      const path = join(this.dir, "logs", name);
      say(this.name, `--- desktop ${path}:\n${await tail(path)}`);
    }
    for (const host of hosts) {
      const ids = this.idsOn(host).filter((id) => /^[a-z0-9-]+$/.test(id));
      const pick = ids.length > 0
        ? ids.map((id) => `logs/${id}.log`).join(" ")
        : "$(ls -t logs/*.log 2>/dev/null | head -n 3)";
      const out = await testnetExec(host, [
        "sh",
        "-c",
        `cd "$HOME/.cache/fabricd" 2>/dev/null || { echo "(no ~/.cache/fabricd)"; exit 0; }; ` +
        `for f in ${pick}; do [ -f "$f" ] || continue; echo "== $f"; tail -n 12 "$f"; done`,
      ]);
      const text = (out.stdout + out.stderr).trimEnd().split("\n").map((l) =>
        `    ${l.slice(0, 400)}`
      );
      say(this.name, `--- ${host} ~/.cache/fabricd/logs:\n${text.join("\n")}`);
    }
  }

  /**
   * Stops every service through the fabric (`fabricd stop --all`), ends
   * `fabricd up`, and kills whatever we started that is still running.
   * Never throws.
   */
  async shutDown(): Promise<void> {
    this.noteChildren();
    const stop = await testnetExec("desktop", [
      "env",
      `DENO_DIR=${DENO_DIR}`,
      Deno.execPath(),
      "run",
      "--quiet",
      "--allow-all",
      MAIN,
      "stop",
      "--all",
      "--fabric",
      this.fabric,
    ]).catch((error) => ({ code: -1, stdout: "", stderr: String(error) }));
    say(
      this.name,
      `fabricd stop --all: exit ${stop.code} ${(stop.stdout + stop.stderr).trim().split("\n")[0]}`,
    );
    try {
      this.#up.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    const ended = await Promise.race([this.#up.status, sleep(15_000).then(() => null)]);
    if (ended === null) {
      say(this.name, "fabricd up did not end within 15 s of SIGTERM: killing it");
      try {
        this.#up.kill("SIGKILL");
      } catch {
        // Gone in the meantime.
      }
      await this.#up.status;
    }
    const ours = [...this.#services.values(), ...this.#children.values()];
    const deadline = Date.now() + 5_000;
    let left = ours.filter(stillThere);
    while (left.length > 0 && Date.now() < deadline) {
      await sleep(100);
      left = left.filter(stillThere);
    }
    for (const proc of left) {
      say(this.name, `left behind, killing pid ${proc.pid}: ${proc.cmdline.slice(0, 160)}`);
      try {
        Deno.kill(proc.pid, "SIGKILL");
      } catch {
        // Gone in the meantime.
      }
    }
    say(
      this.name,
      left.length === 0
        ? `all ${ours.length} processes we started have ended`
        : `${left.length} of ${ours.length} processes we started had to be killed`,
    );
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /** Processes we started that are still running (for checks between rounds). */
  leftovers(ids: string[]): ProcRef[] {
    const refs = ids.map((id) => this.#services.get(id)).filter((p): p is ProcRef => !!p);
    return refs.filter(stillThere);
  }

  /**
   * Processes noted as children of our services that outlived their parent
   * service (an orphaned ssh master, say); kills them and returns them.
   */
  killOrphans(): ProcRef[] {
    const orphans: ProcRef[] = [];
    for (const [key, proc] of this.#children) {
      const now = readProc(proc.pid);
      if (!now || now.start !== proc.start) {
        this.#children.delete(key);
        continue;
      }
      const parentAlive = [...this.#services.values()].some((s) =>
        s.pid === now.ppid && stillThere(s)
      ) || now.ppid === this.#up.pid ||
        [...this.#children.values()].some((c) => c.pid === now.ppid && stillThere(c));
      if (!parentAlive) {
        orphans.push(proc);
        try {
          Deno.kill(proc.pid, "SIGKILL");
        } catch {
          // Gone in the meantime.
        }
        this.#children.delete(key);
      }
    }
    return orphans;
  }
}

/**
 * Empties `~/.cache/fabricd` on `host`. Refuses when a fabricd service runs
 * from that cache (someone else's test, or a leftover): deleting the image
 * under it would not measure anything honest.
 * @throws {BenchStepError} when a service runs there or the removal fails.
 */
export async function emptyImageCache(host: TestnetHost): Promise<void> {
  const home = await homeOf(host);
  const cache = `${home}/.cache/fabricd/`;
  const running = allProcs().filter((p) =>
    p.cmdline.includes(cache) && p.cmdline.includes("--role")
  );
  if (running.length > 0) {
    throw new BenchStepError(
      `fabricd services run from ${host}'s image cache (pid ${
        running.map((p) => p.pid).join(", ")
      }): not emptying it; is another test using the testnet?`,
    );
  }
  const out = await testnetExec(host, [
    "sh",
    "-c",
    'rm -rf "$HOME/.cache/fabricd" && test ! -e "$HOME/.cache/fabricd"',
  ]);
  if (out.code !== 0) {
    throw new BenchStepError(`cannot empty ~/.cache/fabricd on ${host}: ${out.stderr.trim()}`);
  }
}

/** Every testnet host, for log tails after a failure. */
export const REMOTE_HOSTS: readonly TestnetHost[] = TESTNET_HOSTS.filter((h) => h !== "desktop");

if (import.meta.main) Deno.exit(await driverMain(Deno.args));
