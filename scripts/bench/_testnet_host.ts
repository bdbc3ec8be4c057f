/**
 * The machine's side of the SSH benchmarks (`ssh-hop-warm`, `image-copy-cold`,
 * `grow-chain`), apart from the fabric itself (`_testnet_fabric.ts`): bringing
 * the testnet up, running the driver (`_testnet_driver.ts`) inside a testnet
 * host, emptying image caches, and finding and killing the processes a
 * benchmark left behind.
 *
 * The testnet is brought up by {@linkcode prepareTestnet} and taken down by
 * {@linkcode releaseTestnet} when the benchmark ends, even when it fails, so a
 * run never leaves a network behind for the next one (docs/testnet.md).
 * @module
 */
import { dirname } from "node:path";
import { LAUNCHER } from "../../src/image/image_dir.ts";
import { selfImage } from "../../src/image/self_image.ts";
import {
  checkTestnet,
  TESTNET_SCRIPT,
  testnetDown,
  testnetExec,
  type TestnetHost,
  testnetUp,
} from "../../tests/e2e/_testnet.ts";
import { type BenchResult, isRunning, printResult, say } from "./_harness.ts";
import { BenchStepError, EMPTY_CACHE_SH } from "./_testnet_common.ts";

/** The driver program, run inside the hosts by {@linkcode runDriver}. */
const DRIVER = new URL("./_testnet_driver.ts", import.meta.url).pathname;
/** The machine's Deno cache: inside the hosts, HOME (and with it ~/.cache/deno) moves. */
export const DENO_DIR = Deno.env.get("DENO_DIR") ??
  `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;

function denoRun(script: string, args: readonly string[]): string[] {
  return [Deno.execPath(), "run", "--quiet", "--allow-all", script, ...args];
}

/** The command line of `fabricd ARGS...` from the image in `imageDir`, to run inside a host. */
export function fabricdArgv(imageDir: string, args: readonly string[]): string[] {
  return [`${imageDir}/${LAUNCHER}`, ...args];
}

/**
 * Builds this checkout's image here, outside the test network (once per source
 * hash), checks that the testnet can run and brings it up.
 * @returns the image directory, for {@linkcode fabricdArgv}.
 * @throws {BenchStepError} when the testnet cannot run (not root, no namespaces).
 */
export async function prepareTestnet(name: string, profile: LinkProfile = "lan"): Promise<string> {
  const prereq = await checkTestnet();
  if (!prereq.ok) throw new BenchStepError(`the test network cannot run here: ${prereq.reason}`);
  const image = await selfImage();
  await testnetUp({ wan: profile === "wan" });
  say(
    name,
    `testnet is up (scripts/testnet up${profile === "wan" ? " --wan" : ""}); ` +
      `profile ${profile.toUpperCase()}; image ${image.hash.slice(0, 12)}`,
  );
  return dirname(image.files.find((f) => f.name === LAUNCHER)!.path);
}

/**
 * How the desktop-gateway link is shaped: "lan" as built (memory-speed veth),
 * "wan" 100 Mbit/s with 20 ms added each way (`scripts/testnet up --wan`).
 */
export type LinkProfile = "lan" | "wan";

/** The profiles to run, from `BENCH_PROFILES` ("lan,wan" by default). */
export function benchProfiles(): LinkProfile[] {
  const text = Deno.env.get("BENCH_PROFILES") ?? "lan,wan";
  const profiles = text.split(",").map((p) => p.trim().toLowerCase()).filter((p) => p !== "");
  const bad = profiles.filter((p) => p !== "lan" && p !== "wan");
  if (bad.length > 0 || profiles.length === 0) {
    throw new BenchStepError(`BENCH_PROFILES must list lan and/or wan, got "${text}"`);
  }
  return [...new Set(profiles)] as LinkProfile[];
}

/**
 * Runs `one` per profile of {@linkcode benchProfiles}, LAN first. The LAN
 * result keeps the benchmark's name; the WAN result is named `NAME-wan`. Every
 * result but the last is printed here; the last is returned for the harness.
 */
export async function perProfile(
  name: string,
  one: (profile: LinkProfile) => Promise<BenchResult>,
): Promise<BenchResult> {
  const results: BenchResult[] = [];
  const failures: unknown[] = [];
  for (const profile of benchProfiles()) {
    let result: BenchResult;
    try {
      result = await one(profile);
    } catch (error) {
      // The other profile still runs; the benchmark fails only when none did.
      say(name, `profile ${profile.toUpperCase()} could not run: ${error}`);
      failures.push(error);
      continue;
    }
    results.push({
      ...result,
      name: profile === "lan" ? name : `${name}-wan`,
      profile,
      ...(profile === "wan" ? { link: "desktop-gateway 100 Mbit/s, +20 ms each way" } : {}),
    });
  }
  if (results.length === 0) throw failures[0];
  for (const result of results.slice(0, -1)) printResult(result);
  return results.at(-1)!;
}

/** Takes the testnet down after a benchmark; never throws. */
export async function releaseTestnet(name: string): Promise<void> {
  await testnetDown().then(
    () => say(name, "testnet down"),
    (error) => say(name, `testnet down failed: ${error}`),
  );
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
      ...denoRun(DRIVER, args),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    say(name, `driver "${args[0]}" on ${host} still running after ${timeoutMs} ms: killing it`);
    killQuietly(child, "SIGKILL");
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

/** A process seen in /proc: its PID, start time (to survive PID reuse) and command line. */
export interface ProcRef {
  pid: number;
  start: string;
  cmdline: string;
}

/** A {@linkcode ProcRef} with the PID of its parent. */
export interface ProcEntry extends ProcRef {
  ppid: number;
}

/** Process `pid` as /proc shows it now, or null when it is gone (or unreadable). */
export function readProc(pid: number): ProcEntry | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").join(" ").trim();
    return { pid, ppid: Number(fields[1]), start: fields[19] ?? "", cmdline };
  } catch {
    return null;
  }
}

/**
 * Every process in /proc. The testnet shares this machine's PID namespace, so
 * that includes every host's.
 */
export function allProcs(): ProcEntry[] {
  const procs = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const proc = readProc(Number(entry.name));
    if (proc) procs.push(proc);
  }
  return procs;
}

/** Whether the very process `ref` (not a later one with its PID) still runs. */
export function stillThere(ref: ProcRef): boolean {
  const now = readProc(ref.pid);
  return now !== null && now.start === ref.start && isRunning(ref.pid);
}

/** Sends `signal` to a process (a child, or a PID), which may be gone already. */
export function killQuietly(target: Deno.ChildProcess | number, signal: Deno.Signal): void {
  try {
    if (typeof target === "number") Deno.kill(target, signal);
    else target.kill(signal);
  } catch {
    // Already gone.
  }
}

/**
 * Kills (SIGKILL) every process whose command line mentions `text`, saying so
 * under the benchmark's `name`: what a killed driver may have left (its ssh
 * master names its scratch directory in its ControlPath).
 */
export function killProcessesMentioning(name: string, text: string): void {
  for (const proc of allProcs()) {
    if (!proc.cmdline.includes(text)) continue;
    say(name, `left behind, killing pid ${proc.pid}: ${proc.cmdline.slice(0, 160)}`);
    killQuietly(proc.pid, "SIGKILL");
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

/**
 * Empties `~/.cache/fabricd` on `host`. Refuses when a fabricd service runs
 * from that cache (someone else's test, or a leftover): deleting the image
 * under it would not measure anything honest.
 * @throws {BenchStepError} when a service runs there or the removal fails.
 */
export async function emptyImageCache(host: TestnetHost): Promise<void> {
  const home = await homeOf(host);
  const cache = `${home}/.cache/fabricd/`;
  const ours = allProcs().filter((p) => p.cmdline.includes(cache) && p.cmdline.includes("--role"));
  // Warm processes (a spawner's pool on the host) are no services: they go, and the pool
  // starts the next spawn there cold.
  const warm = ours.filter((p) => p.cmdline.includes("--warm"));
  for (const p of warm) killQuietly(p.pid, "SIGTERM");
  for (let i = 0; i < 50 && warm.some((p) => stillThere(p)); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const running = ours.filter((p) => !p.cmdline.includes("--warm") || stillThere(p));
  if (running.length > 0) {
    throw new BenchStepError(
      `fabricd services run from ${host}'s image cache (pid ${
        running.map((p) => p.pid).join(", ")
      }): not emptying it; is another test using the testnet?`,
    );
  }
  const out = await testnetExec(host, ["sh", "-c", EMPTY_CACHE_SH]);
  if (out.code !== 0) {
    throw new BenchStepError(`cannot empty ~/.cache/fabricd on ${host}: ${out.stderr.trim()}`);
  }
}
