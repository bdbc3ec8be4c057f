/**
 * What `registry-heartbeats` and `registry-failover` share: a registry role in
 * a process of its own on a given store, simulated services registered with
 * signed PUTs, a watch that notes every SUSPECT/DEAD declaration, and the
 * etcd test cluster (`scripts/etcd-testcluster`, through `tests/e2e/_etcd.ts`).
 * @module
 */
import { join } from "node:path";
import type { FabricClient, Target } from "../../src/client/fabric_client.ts";
import type { RegistryClient } from "../../src/client/registry_client.ts";
import { selfCommand } from "../../src/image/self_command.ts";
import type { ServiceRecord, ServiceState } from "../../src/types/mod.ts";
import { etcdAvailable, etcdDown, etcdStatus, etcdUp } from "../../tests/e2e/_etcd.ts";
import { say, sleep, within } from "./_harness.ts";

/** A registry process started by {@linkcode startRegistry}. */
export interface RegistryProcess {
  target: Target;
  /** PID of the Deno process itself (the shell execs it). */
  pid: number;
  logFile: string;
  /** Resolves with the exit code. */
  exited: Promise<number>;
  child: Deno.ChildProcess;
}

/** Options of {@linkcode startRegistry}. */
export interface RegistryOptions {
  /** Service ID of the registry. */
  id: string;
  /** Its working directory; the log goes to `DIR/<id>.log`. */
  dir: string;
  keyFile: string;
  /** `--store` value: `sqlite:PATH` or `etcd://host:port,...`. */
  store: string;
  /** `--heartbeat-ms`: sets the TTL (3 beats; on etcd whole seconds, at least 2 s). */
  heartbeatMs: number;
}

/**
 * Starts `fabricd --role registry` with the flags `startLocalFabric` gives it,
 * as a process of our own (its output goes to a log file).
 */
export function startRegistry(options: RegistryOptions): RegistryProcess {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const self = selfCommand();
  const logFile = join(options.dir, `${options.id}.log`);
  const child = new Deno.Command("/bin/sh", {
    args: [
      ...["-c", 'exec "$0" "$@" >"$BENCH_LOG_FILE" 2>&1 </dev/null', self.executable],
      ...self.prefix,
      ...["--role", "registry", "--id", options.id, "--listen", `127.0.0.1:${port}`],
      ...["--store", options.store, "--dir", options.dir, "--key", options.keyFile],
      ...["--heartbeat-ms", String(options.heartbeatMs)],
    ],
    env: { BENCH_LOG_FILE: logFile },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    target: { id: options.id, url: `http://127.0.0.1:${port}` },
    pid: child.pid,
    logFile,
    exited: child.status.then((status) => status.code),
    child,
  };
}

/**
 * Waits until the registry holds its own record as ALIVE.
 * @throws {Error} with the end of its log when it exits or is not up within 20 s.
 */
export async function waitAlive(registry: RegistryClient, process: RegistryProcess): Promise<void> {
  let exitCode: number | null = null;
  process.exited.then((code) => (exitCode = code));
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && exitCode === null) {
    const found = await registry.get(process.target.id).catch(() => undefined);
    if (found?.record.state === "ALIVE") return;
    await sleep(50);
  }
  const log = await Deno.readTextFile(process.logFile).catch(() => "");
  const why = exitCode === null ? "did not come up within 20 s" : `exited with code ${exitCode}`;
  throw new Error(`Registry ${why}; its log ends:\n${log.split("\n").slice(-10).join("\n")}`);
}

/** Asks the registry to stop; kills it when it has not exited within 10 s. */
export async function stopRegistry(
  name: string,
  client: FabricClient,
  process: RegistryProcess,
): Promise<void> {
  await client.call(process.target, {
    method: "POST",
    path: "/v1/stop",
    body: { reason: "benchmark done" },
  }).catch((error) => say(name, `stop request failed: ${error}`));
  if (!(await within(process.exited.then(() => true), 10_000, false))) {
    say(name, `registry pid ${process.pid} did not exit within 10 s: killing it`);
    process.child.kill("SIGKILL");
    await process.exited;
  }
  say(name, `registry ${process.target.id} stopped`);
}

/**
 * Writes service `id` (incarnation 1) with a signed PUT: an ALIVE agent freshly
 * heartbeaten by default, so on etcd it gets its lease.
 */
export async function registerService(
  registry: RegistryClient,
  id: string,
  parent: string,
  state: ServiceState = "ALIVE",
): Promise<void> {
  const now = Date.now();
  const record: ServiceRecord = {
    id,
    role: "agent",
    state,
    incarnation: 1,
    host: "bench",
    pid: 0,
    endpoint: "http://127.0.0.1:9",
    parent,
    route: [parent, id],
    launcher: "local://",
    imageHash: "",
    sessions: [],
    started: now,
    lastHeartbeat: now,
    restarts: 0,
    lastFailure: "",
    updated: now,
    options: {},
  };
  await registry.put(record, "simulated service for the benchmark");
}

/** Runs `task` on every item, at most `concurrency` at a time. */
export async function forEachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** SUSPECT/DEAD declarations seen on a registry's change stream. */
export interface Declarations {
  /** `"<id> <state>"` for each declaration, in order. */
  readonly seen: string[];
  /** Why the watch failed, or "". */
  failure(): string;
  /** Stops watching and waits for the stream to end. */
  stop(): Promise<void>;
}

/**
 * Follows the registry's change stream from the start, so a service declared
 * SUSPECT and taken back by its next heartbeat is seen too, not only what a
 * final list shows. `ignore` leaves out IDs (say, the registry itself).
 */
export function watchDeclarations(
  name: string,
  registry: RegistryClient,
  ignore: readonly string[] = [],
): Declarations {
  const seen: string[] = [];
  const abort = new AbortController();
  let failure = "";
  const watching = registry.watch(0, (event) => {
    const to = event.transition?.to;
    if ((to === "SUSPECT" || to === "DEAD") && !ignore.includes(event.record.id)) {
      seen.push(`${event.record.id} ${to}`);
    }
  }, abort.signal).catch((error) => {
    if (abort.signal.aborted) return;
    failure = String(error);
    say(name, `registry watch failed: ${failure}`);
  });
  return {
    seen,
    failure: () => failure,
    stop: async () => {
      abort.abort();
      await watching;
    },
  };
}

/** `etcd://host:port,...` for the registry's `--store`, from the members' client URLs. */
export function etcdStoreUrl(urls: readonly string[]): string {
  return `etcd://${urls.map((url) => new URL(url).host).join(",")}`;
}

/**
 * Why the etcd test cluster cannot be used here (not root, no /usr/bin/etcd,
 * or a member already running: the cluster belongs to someone else's test
 * then), or null when it can.
 */
export async function etcdUnusable(): Promise<string | null> {
  const prereq = await etcdAvailable();
  if (!prereq.ok) return prereq.reason;
  const { members } = await etcdStatus();
  const running = members.filter((m) => m.state !== "stopped").map((m) => m.name);
  if (running.length > 0) {
    return `the etcd test cluster is already running (${running.join(", ")}): ` +
      "in use by a test? run scripts/etcd-testcluster down when it is not";
  }
  return null;
}

/** The etcd test cluster as {@linkcode withTestCluster} brought it up. */
export interface OwnedCluster {
  /** Client URLs, m1 first. */
  urls: string[];
  /** Counts the members running now as ours (after restarting one); answers their PIDs. */
  adopt(): Promise<Map<string, number>>;
}

/**
 * Brings a fresh etcd test cluster up, runs `fn` on it, and takes it down
 * again (data dirs removed), unless members that this run did not start run
 * by then: someone else's test took the cluster over, and is left alone.
 */
export async function withTestCluster<T>(
  name: string,
  fn: (cluster: OwnedCluster) => Promise<T>,
): Promise<T> {
  const ours = new Set<number>();
  const adopt = async (): Promise<Map<string, number>> => {
    const pids = await etcdPids();
    for (const pid of pids.values()) ours.add(pid);
    return pids;
  };
  say(name, "bringing the etcd test cluster up (3 members on 127.0.0.1)");
  try {
    const urls = await etcdUp();
    await adopt();
    say(name, `etcd members healthy: ${urls.join(", ")}`);
    return await fn({ urls, adopt });
  } finally {
    const running = ours.size === 0
      ? []
      : [...(await etcdPids().catch(() => new Map<string, number>())).values()];
    const foreign = running.filter((pid) => !ours.has(pid));
    if (foreign.length > 0) {
      say(name, `left the etcd test cluster up: pids ${foreign.join(", ")} are someone else's`);
    } else {
      await etcdDown().then(
        () => say(name, "etcd test cluster down"),
        (error) => say(name, `etcd test cluster down failed: ${error}`),
      );
    }
  }
}

/** PIDs of the etcd members running now, by member name. */
export async function etcdPids(): Promise<Map<string, number>> {
  const { members } = await etcdStatus();
  return new Map(members.flatMap((m) => (m.pid === null ? [] : [[m.name, m.pid] as const])));
}

/**
 * Throws when a member of `before` other than `except` no longer runs with the
 * same PID: someone else (a concurrent etcd test: there is one test cluster
 * per machine) restarted the cluster, and the measurement means nothing.
 */
export async function assertUndisturbed(
  before: ReadonlyMap<string, number>,
  except = "",
): Promise<void> {
  const now = await etcdPids();
  const moved = [...before].filter(([name, pid]) => name !== except && now.get(name) !== pid);
  if (moved.length > 0) {
    throw new Error(
      `etcd member ${moved.map(([name]) => name).join(", ")} was restarted by someone else ` +
        "during the run (a concurrent etcd test?): the measurement is void",
    );
  }
}

/** What one etcd member says of itself: database file size and the cluster's revision. */
export async function etcdMemberStatus(
  url: string,
): Promise<{ dbBytes: number; revision: number }> {
  const answer = await fetch(`${url}/v3/maintenance/status`, {
    method: "POST",
    body: "{}",
    signal: AbortSignal.timeout(2000),
  });
  const status = await answer.json() as { dbSize?: string; header?: { revision?: string } };
  return { dbBytes: Number(status.dbSize ?? 0), revision: Number(status.header?.revision ?? 0) };
}
