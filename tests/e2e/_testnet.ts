/**
 * Helpers for the tests that cross machines: they drive `scripts/testnet` (see docs/testnet.md),
 * which builds an HPC site of network namespaces on this machine.
 *
 * Tests using the testnet must not run in parallel with each other (`deno test` runs files one
 * after the other unless `--parallel` is given): there is one testnet per machine.
 */

import { checkTools, type Prereq } from "./_prereq.ts";

/** The script, as an absolute path, so tests work from any working directory. */
export const TESTNET_SCRIPT: string = new URL("../../scripts/testnet", import.meta.url).pathname;

export const TESTNET_HOSTS = ["desktop", "gateway", "head", "compute1", "compute2"] as const;
export type TestnetHost = typeof TESTNET_HOSTS[number];

/** The address others use for each host (its HostName in the ssh configs). */
export const TESTNET_ADDR: Readonly<Record<TestnetHost, string>> = {
  desktop: "198.18.1.2",
  gateway: "198.18.1.1",
  head: "198.19.1.2",
  compute1: "198.19.11.2",
  compute2: "198.19.12.2",
};

/** Every address of each host, one per link (docs/testnet.md, "Address plan"). */
export const TESTNET_ADDRS: Readonly<Record<TestnetHost, readonly string[]>> = {
  desktop: ["198.18.1.2"],
  gateway: ["198.18.1.1", "198.19.1.1"],
  head: ["198.19.1.2", "198.19.11.1", "198.19.12.1"],
  compute1: ["198.19.11.2"],
  compute2: ["198.19.12.2"],
};

export type TestnetPrereq = Prereq;

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program on this machine (not in the testnet) and collects its output. */
export async function run(
  cmd: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<CommandResult> {
  const out = await new Deno.Command(cmd, {
    args: [...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The Debian package for each program the testnet needs. */
const TOOLS: ReadonlyArray<readonly [string, string]> = [
  ["ip", "iproute2"],
  ["nft", "nftables"],
  ["/usr/sbin/sshd", "openssh-server"],
  ["ssh", "openssh-client"],
  ["ssh-keygen", "openssh-client"],
  ["unshare", "util-linux"],
  ["nsenter", "util-linux"],
  ["flock", "util-linux"],
  ["timeout", "coreutils"],
  ["bash", "bash"],
];

/**
 * Whether the testnet can run here: Linux, root, the programs it needs, and the right to
 * create a network namespace (root in an unprivileged container lacks it). No side effects
 * beyond creating and deleting one probe namespace.
 */
export async function checkTestnet(): Promise<TestnetPrereq> {
  const tools = await checkTools("the testnet", TOOLS);
  if (!tools.ok) return tools;
  // Not "fab-": that prefix belongs to the testnet itself and `down` removes all of it.
  const probe = `fabprobe-${Deno.pid}`;
  const add = await run("ip", ["netns", "add", probe]);
  if (add.code !== 0) {
    return {
      ok: false,
      reason:
        `cannot create a network namespace (a container without CAP_SYS_ADMIN?): ${add.stderr.trim()}`,
    };
  }
  await run("ip", ["netns", "del", probe]);
  return { ok: true };
}

/** Runs `scripts/testnet ARGS...` and returns its result, whatever the exit code. */
export function testnet(args: readonly string[]): Promise<CommandResult> {
  return run(TESTNET_SCRIPT, args);
}

async function testnetOrThrow(args: readonly string[]): Promise<CommandResult> {
  // The WAN profile's relay runs on this Deno, found on PATH or not.
  const r = await run(TESTNET_SCRIPT, args, { DENO: Deno.execPath() });
  if (r.code !== 0) {
    throw new Error(
      `scripts/testnet ${args.join(" ")} exited ${r.code}\n${r.stdout}${r.stderr}`,
    );
  }
  return r;
}

/**
 * Brings the testnet up (idempotent); throws with the script's output when that fails.
 * `wan` shapes the desktop-gateway link (100 Mbit/s, +20 ms each way; docs/testnet.md);
 * without it the link is set back to LAN.
 */
export async function testnetUp(options: { wan?: boolean } = {}): Promise<void> {
  await testnetOrThrow(options.wan ? ["up", "--wan"] : ["up"]);
}

/** Takes the testnet down (idempotent); throws with the script's output when that fails. */
export async function testnetDown(): Promise<void> {
  await testnetOrThrow(["down"]);
}

/** Runs CMD on HOST (its network, hostname and home; no shell unless CMD is one). */
export function testnetExec(host: TestnetHost, cmd: readonly string[]): Promise<CommandResult> {
  return testnet(["exec", host, ...cmd]);
}

/** Runs CMD over ssh from the desktop to HOST (through gateway, head as needed). */
export function testnetSsh(host: TestnetHost, cmd: readonly string[]): Promise<CommandResult> {
  return testnet(["ssh", host, ...cmd]);
}

/**
 * Starts a long-running CMD on HOST (a listener, a service). Output is discarded; kill the
 * child when done (or let `testnetDown` kill it) and await its `status`.
 */
export function testnetSpawn(host: TestnetHost, cmd: readonly string[]): Deno.ChildProcess {
  return new Deno.Command(TESTNET_SCRIPT, {
    args: ["exec", host, ...cmd],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/**
 * Whether a TCP connection from HOST to ADDR:PORT opens within `seconds`
 * (bash's /dev/tcp, so nothing but bash is needed on the host).
 */
export async function testnetCanConnect(
  host: TestnetHost,
  addr: string,
  port: number,
  seconds = 3,
): Promise<boolean> {
  const r = await testnetExec(host, [
    "timeout",
    String(seconds),
    "bash",
    "-c",
    `</dev/tcp/${addr}/${port}`,
  ]);
  return r.code === 0;
}

/** Brings the testnet up, runs FN, and always takes the testnet down again. */
export async function withTestnet<T>(fn: () => Promise<T>): Promise<T> {
  try {
    await testnetUp();
    return await fn();
  } finally {
    await testnetDown();
  }
}

export interface TestnetListener {
  /** Stops the listener and waits for it to exit. */
  close(): Promise<void>;
}

/**
 * Starts a TCP listener on HOST, on every address, PORT (it accepts and closes connections),
 * and resolves once HOST itself can connect to it, so a failed connect elsewhere is the
 * firewall's doing. Runs this very Deno, so the hosts need nothing else installed.
 */
export async function testnetListen(host: TestnetHost, port: number): Promise<TestnetListener> {
  // Keep the host's home clean: Deno would otherwise start a cache in it.
  const denoDir = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
  const child = testnetSpawn(host, [
    "env",
    `DENO_DIR=${denoDir}`,
    Deno.execPath(),
    "eval",
    "--no-config",
    `const l = Deno.listen({ hostname: "0.0.0.0", port: ${port} });` +
    ` for await (const c of l) c.close();`,
  ]);
  const close = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone (testnetDown kills everything in the namespaces)
    }
    await child.status;
  };
  const deadline = Date.now() + 10_000;
  while (!(await testnetCanConnect(host, "127.0.0.1", port, 1))) {
    if (Date.now() > deadline) {
      await close();
      throw new Error(`listener on ${host}:${port} did not come up`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { close };
}
