/**
 * What the two halves of the SSH benchmarks (`ssh-hop-warm`,
 * `image-copy-cold`, `grow-chain`) share: the JSON that each command of the
 * driver (`_testnet_driver.ts`, run inside a testnet host) prints and the
 * machine's side (`_testnet_host.ts`, `_testnet_fabric.ts`) reads, the error
 * naming the step that failed, and a few small helpers.
 * @module
 */
import { sleep } from "./_harness.ts";
import type { ShipResult } from "../../src/launchers/ship_image.ts";

/** Empties `~/.cache/fabricd` of the host it runs on, failing when that did not work. */
export const EMPTY_CACHE_SH = 'rm -rf "$HOME/.cache/fabricd" && test ! -e "$HOME/.cache/fabricd"';

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
  /** `ssh -S MASTER HOST true` over a ControlMaster the driver holds open. */
  sshTrueMasterMs: number[];
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
  /** Plain `cat FILES | ssh HOST 'cat >/dev/null'` over the same master (one entry), ms. */
  catNullMs: number[];
  /** Plain `cat FILES | ssh HOST 'cat >FILE'` (then removed) over the same master (one entry), ms. */
  catDiskMs: number[];
}

/** What `ship` prints. */
export interface ShipOutput {
  kind: string;
  hash: string;
  files: { name: string; size: number }[];
  /** Reading the image's manifest, once, not counted (it is built outside the test network). */
  imageMs: number;
  /** Opening the ControlMaster connection, once, not counted. */
  openMs: number;
  runs: ShipRun[];
  /** Parts of a copy, measured once after the runs (informative). */
  parts: {
    /** Local `zstd -1 -T0` of each large file to /dev/null, ms (what compressing would cost). */
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

/** Options of {@linkcode poll}. */
export interface PollOptions {
  /** How long to keep trying, ms. */
  timeoutMs: number;
  /** Pause between two tries, ms. */
  intervalMs: number;
}

/**
 * Calls `check` until it returns something other than `undefined`, pausing
 * `intervalMs` between calls; gives up (returning `undefined`) when it still
 * has not after `timeoutMs`.
 */
export async function poll<T>(
  check: () => T | undefined | Promise<T | undefined>,
  options: PollOptions,
): Promise<T | undefined> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined || Date.now() >= deadline) return value;
    await sleep(options.intervalMs);
  }
}

/** Names in directory `path`, or none when it cannot be read. */
export async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(path)) names.push(entry.name);
  } catch {
    // Missing or unreadable: nothing to list.
  }
  return names;
}

/** Prints a driver's progress on standard error, naming the benchmark and this host. */
export function progress(text: string): void {
  const name = Deno.env.get("BENCH_NAME") ?? "bench";
  console.error(`[${name}@${Deno.hostname()}] ${text}`);
}

/**
 * Runs `argv` (program, then its arguments) with its output discarded and
 * returns its wall time, ms.
 * @throws {BenchStepError} naming `what`, with its standard error, when it fails.
 */
export async function timedCommand(what: string, argv: readonly string[]): Promise<number> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new TypeError(`No program given for "${what}"`);
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
