/**
 * Helpers for the tests that need a real etcd: they drive `scripts/etcd-testcluster`, a
 * three-member cluster on 127.0.0.1 built from Debian's etcd 3.4 (/usr/bin/etcd, package
 * etcd-server), and talk to it through etcd's v3 JSON API (the grpc-gateway: POST JSON to
 * /v3/..., keys and values base64, 64-bit integers as decimal strings).
 *
 * Tests using the cluster must not run in parallel with each other (`deno test` runs files one
 * after the other unless `--parallel` is given): there is one cluster per machine.
 */
import { checkTools, type Prereq } from "./_prereq.ts";
import { type CommandResult, run } from "./_testnet.ts";

export type { CommandResult };

/** The script, as an absolute path, so tests work from any working directory. */
export const ETCD_SCRIPT: string = new URL("../../scripts/etcd-testcluster", import.meta.url)
  .pathname;

/** Where the script keeps data dirs, logs and pid files. */
export const ETCD_STATE_DIR = "/var/lib/fabricd-etcd-test";

export const ETCD_MEMBERS = ["m1", "m2", "m3"] as const;
export type EtcdMember = typeof ETCD_MEMBERS[number];

/** Each member's client URL (the plan in the header of scripts/etcd-testcluster). */
export const ETCD_CLIENT_URL: Readonly<Record<EtcdMember, string>> = {
  m1: "http://127.0.0.1:23791",
  m2: "http://127.0.0.1:23792",
  m3: "http://127.0.0.1:23793",
};

/** Each member's peer URL. */
export const ETCD_PEER_URL: Readonly<Record<EtcdMember, string>> = {
  m1: "http://127.0.0.1:23801",
  m2: "http://127.0.0.1:23802",
  m3: "http://127.0.0.1:23803",
};

export type EtcdPrereq = Prereq;

/** The Debian package for each program the script needs. */
const TOOLS: ReadonlyArray<readonly [string, string]> = [
  ["/usr/bin/etcd", "etcd-server"],
  ["curl", "curl"],
  ["setsid", "util-linux"],
  ["flock", "util-linux"],
  ["pgrep", "procps"],
  ["bash", "bash"],
];

/**
 * Whether the test cluster can run here: Linux, root (the state is under /var/lib), Debian's
 * etcd and the programs the script uses. No side effects.
 */
export async function etcdAvailable(): Promise<EtcdPrereq> {
  return await checkTools("the etcd test cluster", TOOLS);
}

/** Runs `scripts/etcd-testcluster ARGS...` and returns its result, whatever the exit code. */
export function etcdCluster(args: readonly string[]): Promise<CommandResult> {
  return run(ETCD_SCRIPT, args);
}

async function etcdClusterOrThrow(args: readonly string[]): Promise<CommandResult> {
  const r = await etcdCluster(args);
  if (r.code !== 0) {
    throw new Error(
      `scripts/etcd-testcluster ${args.join(" ")} exited ${r.code}\n${r.stdout}${r.stderr}`,
    );
  }
  return r;
}

/**
 * Brings the cluster up (idempotent: a running cluster is kept, data and all) and waits until
 * all three members are healthy; returns their client URLs, m1 first.
 */
export async function etcdUp(): Promise<string[]> {
  const r = await etcdClusterOrThrow(["up"]);
  const line = r.stdout.split("\n").find((l) => l.startsWith("ETCD_ENDPOINTS="));
  if (line === undefined) {
    throw new Error(`scripts/etcd-testcluster up printed no ETCD_ENDPOINTS=\n${r.stdout}`);
  }
  return line.slice("ETCD_ENDPOINTS=".length).split(",");
}

/** Stops every member and removes the data dirs (idempotent). */
export async function etcdDown(): Promise<void> {
  await etcdClusterOrThrow(["down"]);
}

/**
 * The leader a majority of the members agrees on. Throws while there is none (an election in
 * progress, no quorum); see etcdWaitLeader to wait for one.
 */
export async function etcdLeader(): Promise<{ name: EtcdMember; url: string }> {
  const r = await etcdClusterOrThrow(["leader"]);
  const [name, url] = r.stdout.trim().split(/\s+/);
  if (!isMember(name) || url === undefined) {
    throw new Error(`scripts/etcd-testcluster leader printed ${JSON.stringify(r.stdout)}`);
  }
  return { name, url };
}

/**
 * Polls etcdLeader until there is a leader that is not in `exclude` (say, the member just
 * killed) or `timeoutMs` passes.
 */
export async function etcdWaitLeader(
  opts: { exclude?: readonly EtcdMember[]; timeoutMs?: number } = {},
): Promise<{ name: EtcdMember; url: string }> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let last = "";
  for (;;) {
    try {
      const leader = await etcdLeader();
      if (!(opts.exclude ?? []).includes(leader.name)) return leader;
      last = `the leader is still ${leader.name}`;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() > deadline) throw new Error(`no new etcd leader in time: ${last}`);
    await sleep(50);
  }
}

/** SIGKILLs one member; its data dir stays, so etcdStart brings it back. */
export async function etcdKill(name: EtcdMember): Promise<void> {
  await etcdClusterOrThrow(["kill", name]);
}

/** Starts a stopped member again from its data dir and waits until it is healthy. */
export async function etcdStart(name: EtcdMember): Promise<void> {
  await etcdClusterOrThrow(["start", name]);
}

/** SIGSTOPs one member: to the others (and to clients) it looks partitioned away. */
export async function etcdPause(name: EtcdMember): Promise<void> {
  await etcdClusterOrThrow(["pause", name]);
}

/** SIGCONTs a paused member and waits until it is healthy. */
export async function etcdResume(name: EtcdMember): Promise<void> {
  await etcdClusterOrThrow(["resume", name]);
}

export interface EtcdMemberStatus {
  name: EtcdMember;
  state: "running" | "paused" | "stopped";
  pid: number | null;
  role: "leader" | "follower" | "no-leader" | null;
  healthy: boolean;
  url: string;
}

/** `scripts/etcd-testcluster status`, parsed; `ok` when all three run and are healthy. */
export async function etcdStatus(): Promise<{ ok: boolean; members: EtcdMemberStatus[] }> {
  const r = await etcdCluster(["status"]);
  const members: EtcdMemberStatus[] = [];
  for (const l of r.stdout.split("\n").slice(1)) {
    const [name, state, pid, role, health, url] = l.trim().split(/\s+/);
    if (!isMember(name) || url === undefined) continue;
    if (state !== "running" && state !== "paused" && state !== "stopped") continue;
    members.push({
      name,
      state,
      pid: pid === "-" ? null : Number(pid),
      role: role === "leader" || role === "follower" || role === "no-leader" ? role : null,
      healthy: health === "true",
      url,
    });
  }
  return { ok: r.code === 0, members };
}

/**
 * Runs FN against a fresh cluster: takes down whatever an earlier run left, brings the
 * cluster up, passes the client URLs, and always takes it down again.
 */
export async function withEtcd<T>(fn: (urls: string[]) => Promise<T>): Promise<T> {
  try {
    await etcdDown();
    return await fn(await etcdUp());
  } finally {
    await etcdDown();
  }
}

function isMember(name: string | undefined): name is EtcdMember {
  return (ETCD_MEMBERS as readonly (string | undefined)[]).includes(name);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------
// A little of the v3 JSON API, enough for tests.

/** Base64 of the UTF-8 bytes of S (keys and values travel as base64). */
export function b64(s: string): string {
  let bin = "";
  for (const byte of new TextEncoder().encode(s)) bin += String.fromCharCode(byte);
  return btoa(bin);
}

/** The UTF-8 string behind base64 S. */
export function unb64(s: string): string {
  return new TextDecoder().decode(Uint8Array.from(atob(s), (c) => c.charCodeAt(0)));
}

/** An answer from etcd other than 2xx: the gateway's {"error","message","code"} body. */
export class EtcdApiError extends Error {
  constructor(
    readonly url: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`POST ${url}: HTTP ${status}: ${body}`);
    this.name = "EtcdApiError";
  }
}

/**
 * POSTs BODY as JSON to URL+PATH (say "/v3/kv/put") and returns the parsed answer. Throws an
 * EtcdApiError for a non-2xx answer and a TimeoutError when none comes within `timeoutMs`
 * (a paused member never answers).
 */
export async function etcdCall<T = Record<string, unknown>>(
  url: string,
  path: string,
  body: unknown,
  timeoutMs = 2000,
): Promise<T> {
  const res = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  if (!res.ok) throw new EtcdApiError(`${url}${path}`, res.status, text);
  return JSON.parse(text) as T;
}

/** The response header every v3 answer carries (64-bit numbers as strings). */
export interface EtcdHeader {
  cluster_id: string;
  member_id: string;
  revision?: string;
  raft_term: string;
}

export interface EtcdKv {
  key: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}

/** Puts KEY=VALUE through the member at URL; returns the new revision. */
export async function etcdPut(
  url: string,
  key: string,
  value: string,
  opts: { lease?: string; timeoutMs?: number } = {},
): Promise<number> {
  const body: Record<string, string> = { key: b64(key), value: b64(value) };
  if (opts.lease !== undefined) body.lease = opts.lease;
  const r = await etcdCall<{ header: EtcdHeader }>(url, "/v3/kv/put", body, opts.timeoutMs);
  return Number(r.header.revision);
}

/**
 * Reads KEY through the member at URL: its value, or undefined when there is no such key.
 * Linearizable by default (goes through the leader); `serializable` reads the member's own copy.
 */
export async function etcdGet(
  url: string,
  key: string,
  opts: { serializable?: boolean; timeoutMs?: number } = {},
): Promise<string | undefined> {
  const r = await etcdGetKv(url, key, opts);
  return r === undefined ? undefined : unb64(r.value ?? "");
}

/** Like etcdGet, but the whole key-value record (revisions, lease). */
export async function etcdGetKv(
  url: string,
  key: string,
  opts: { serializable?: boolean; timeoutMs?: number } = {},
): Promise<EtcdKv | undefined> {
  const body: Record<string, unknown> = { key: b64(key) };
  if (opts.serializable) body.serializable = true;
  // A missing key: no "kvs" and no "count" at all (the gateway leaves out zero values).
  const r = await etcdCall<{ kvs?: EtcdKv[] }>(url, "/v3/kv/range", body, opts.timeoutMs);
  return r.kvs?.[0];
}

/**
 * Puts KEY=VALUE through whichever of URLS takes it, trying them in turn until `timeoutMs`
 * passes (each attempt gets at most a second, so a paused or dead member only costs that).
 * Returns the URL that took the write.
 */
export async function etcdPutAnywhere(
  urls: readonly string[],
  key: string,
  value: string,
  timeoutMs = 5000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const errors: string[] = [];
  for (let i = 0;; i++) {
    const url = urls[i % urls.length];
    if (url === undefined) throw new Error("etcdPutAnywhere: no URLs");
    try {
      await etcdPut(url, key, value, { timeoutMs: 1000 });
      return url;
    } catch (e) {
      errors.push(`${url}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`no member took ${key} within ${timeoutMs} ms:\n${errors.join("\n")}`);
    }
    if (i % urls.length === urls.length - 1) await sleep(100);
  }
}

/** Whether the member at URL says {"health":"true"} (it has a leader and a quorum). */
export async function etcdHealthy(url: string, timeoutMs = 1000): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    const body = await res.json() as { health?: string };
    return body.health === "true";
  } catch {
    return false;
  }
}
