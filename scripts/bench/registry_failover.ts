/**
 * `registry-failover`: a registry on a fresh three-member etcd test cluster,
 * 20 simulated services heartbeating every 500 ms (lease TTL 2 s) the way
 * `src/health/heartbeat.ts` does, and a stream of record PUTs. Each round
 * SIGKILLs the etcd leader and measures the time from the kill to the first
 * committed write (a PUT sent after the kill and answered 200) and to the
 * first heartbeat sent after the kill and answered 200 (a lease keep-alive
 * etcd accepted), then restarts the member and waits until it is healthy.
 * The baseline is the cluster's election timeout, 1000 ms. Nobody may be
 * declared SUSPECT or DEAD for a failover (docs/registry.md).
 * @module
 */
import { join } from "node:path";
import { FabricClient } from "../../src/client/fabric_client.ts";
import { RegistryClient } from "../../src/client/registry_client.ts";
import { generateFabricKeys, writeKeyFile } from "../../src/crypto/keys.ts";
import {
  etcdKill,
  etcdLeader,
  type EtcdMember,
  etcdStart,
  etcdWaitLeader,
} from "../../tests/e2e/_etcd.ts";
import {
  type Benchmark,
  type BenchResult,
  envNumber,
  median,
  round,
  say,
  sleep,
} from "./_harness.ts";
import {
  assertUndisturbed,
  type Declarations,
  etcdPids,
  etcdStoreUrl,
  etcdUnusable,
  type OwnedCluster,
  registerService,
  type RegistryProcess,
  startRegistry,
  stopRegistry,
  waitAlive,
  watchDeclarations,
  withTestCluster,
} from "./_registry_stores.ts";

const NAME = "registry-failover";
const SERVICES = 20;
const HEARTBEAT_MS = 500;
/** `--election-timeout` of scripts/etcd-testcluster, ms. */
const ELECTION_MS = 1000;
const REGISTRY_ID = "reg-failover01";
/** Records written over and over (state LAUNCHING: no lease, so they never go DEAD). */
const PROBES = 64;
/** A PUT leaves this often (open loop), on the next probe record with none in flight, ms. */
const PROBE_EVERY_MS = 25;
const ROUND_LIMIT_MS = 30_000;

/** The `registry-failover` benchmark; `BENCH_RUNS` overrides the 5 rounds. */
export const registryFailover: Benchmark = {
  name: NAME,
  description: "etcd leader SIGKILL to the first committed registry write vs the election timeout",
  run,
};

/** One request: when it left and when it ended, `performance.now()` ms. */
interface Attempt {
  id: string;
  sent: number;
  done: number;
  ok: boolean;
}

/** Requests sent in loops until stopped, every attempt logged. */
class Traffic {
  readonly attempts: Attempt[] = [];
  #running = true;
  #loops: Promise<void>[] = [];

  /** Runs `send` for `id` in a loop, waiting `pauseMs()` after each attempt. */
  loop(id: string, send: () => Promise<unknown>, pauseMs: () => number): void {
    this.#loops.push((async () => {
      while (this.#running) {
        const sent = performance.now();
        const ok = await send().then(() => true, () => false);
        this.attempts.push({ id, sent, done: performance.now(), ok });
        await sleep(pauseMs());
      }
    })());
  }

  /**
   * Every `everyMs`, sends `send(id)` for the next of `ids` that has no request
   * in flight (none: skips a turn), without waiting for the answers.
   */
  openLoop(ids: readonly string[], everyMs: number, send: (id: string) => Promise<unknown>): void {
    const free = [...ids];
    const inFlight = new Set<Promise<void>>();
    this.#loops.push((async () => {
      while (this.#running) {
        const id = free.shift();
        if (id !== undefined) {
          const sent = performance.now();
          const request = send(id).then(() => true, () => false).then((ok) => {
            this.attempts.push({ id, sent, done: performance.now(), ok });
            free.push(id);
            inFlight.delete(request);
          });
          inFlight.add(request);
        }
        await sleep(everyMs);
      }
      await Promise.all(inFlight);
    })());
  }

  /** The first attempt sent at or after `from` that succeeded, by completion. */
  firstOk(from: number, id?: string): Attempt | undefined {
    return this.attempts.filter((a) => a.ok && a.sent >= from && (id ?? a.id) === a.id)
      .reduce<Attempt | undefined>(
        (first, a) => (first && first.done <= a.done ? first : a),
        undefined,
      );
  }

  /** Failed attempts sent in [from, to). */
  failures(from: number, to: number): number {
    return this.attempts.filter((a) => !a.ok && a.sent >= from && a.sent < to).length;
  }

  /** Stops the loops and waits for the requests in flight. */
  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
  }
}

/** What one leader kill measured, ms from the kill. */
interface Round {
  killed: EtcdMember;
  writeMs: number;
  heartbeatMs: number;
  /** Until every service had a heartbeat answered again. */
  allServicesMs: number;
  /** Until `scripts/etcd-testcluster leader` named a new leader (polled: coarse). */
  leaderSeenMs: number;
  killHelperMs: number;
  failedHeartbeats: number;
  failedWrites: number;
}

async function run(): Promise<BenchResult> {
  const rounds = Math.round(envNumber("BENCH_RUNS", 5));
  const unusable = await etcdUnusable();
  if (unusable !== null) throw new Error(`The etcd test cluster cannot run here: ${unusable}`);
  return await withTestCluster(NAME, (cluster) => measure(cluster, rounds));
}

async function measure(cluster: OwnedCluster, rounds: number): Promise<BenchResult> {
  const dir = await Deno.makeTempDir({ prefix: "fabricd-bench-failover-" });
  const keys = await generateFabricKeys();
  const client = new FabricClient(keys, { timeoutMs: 5000 });
  let started: RegistryProcess | null = null;
  let declared: Declarations | null = null;
  const beats = new Traffic();
  const writes = new Traffic();
  try {
    const keyFile = join(dir, "fabric.key");
    await writeKeyFile(keyFile, keys);
    const store = etcdStoreUrl(cluster.urls);
    started = startRegistry({ id: REGISTRY_ID, dir, keyFile, store, heartbeatMs: HEARTBEAT_MS });
    const registry = new RegistryClient(client, [started.target]);
    await waitAlive(registry, started);
    say(NAME, `registry ${REGISTRY_ID} (pid ${started.pid}) ALIVE, --store ${store}`);
    declared = watchDeclarations(NAME, registry);

    const ids = Array.from({ length: SERVICES }, (_, i) => `agt-f${String(i).padStart(7, "0")}`);
    for (const id of ids) await registerService(registry, id, REGISTRY_ID);
    const probes = Array.from(
      { length: PROBES },
      (_, i) => `agt-probe${String(i).padStart(4, "0")}`,
    );
    for (const id of probes) await registerService(registry, id, REGISTRY_ID, "LAUNCHING");
    say(NAME, `${SERVICES} services heartbeating every ${HEARTBEAT_MS} ms (timeout 1 s, TTL 2 s)`);
    for (const id of ids) {
      // As src/health/heartbeat.ts: beat, then the interval jittered by 20 % either way.
      beats.loop(
        id,
        () => registry.heartbeat(id, 1, { timeoutMs: Math.max(1000, HEARTBEAT_MS) }),
        () => HEARTBEAT_MS * (0.8 + Math.random() * 0.4),
      );
      await sleep(HEARTBEAT_MS / SERVICES);
    }
    say(NAME, `records re-written by PUT, one leaving every ${PROBE_EVERY_MS} ms (open loop)`);
    writes.openLoop(
      probes,
      PROBE_EVERY_MS,
      (id) => registerService(registry, id, REGISTRY_ID, "LAUNCHING"),
    );
    await sleep(3000);

    const results: Round[] = [];
    for (let i = 0; i < rounds; i++) {
      const r = await killLeader(ids, beats, writes);
      results.push(r);
      say(
        NAME,
        `round ${i + 1}/${rounds}: killed ${r.killed}; first write ${round(r.writeMs)} ms, ` +
          `first heartbeat ${round(r.heartbeatMs)} ms, all ${SERVICES} beating ` +
          `${round(r.allServicesMs)} ms, new leader named ${round(r.leaderSeenMs)} ms ` +
          `(failed: ${r.failedHeartbeats} heartbeats, ${r.failedWrites} writes)`,
      );
      await etcdStart(r.killed);
      await cluster.adopt();
      say(NAME, `  ${r.killed} restarted and healthy`);
      await sleep(2000);
    }
    // Still beating: once they stop, every lease expires 2 s later, rightly.
    await sleep(500);
    const records = await registry.list();
    const unwell = records.filter((r) => ids.includes(r.id) && r.state !== "ALIVE");
    await declared.stop();
    await beats.stop();
    await writes.stop();
    const self = declared.seen.filter((s) => s.startsWith(`${REGISTRY_ID} `));
    const services = declared.seen.filter((s) => !s.startsWith(`${REGISTRY_ID} `));
    const dead = services.filter((s) => s.endsWith(" DEAD"));
    const med = (pick: (r: Round) => number) => round(median(results.map(pick)));
    const value = med((r) => r.writeMs);
    say(
      NAME,
      `median: first write ${value} ms, first heartbeat ${med((r) => r.heartbeatMs)} ms, ` +
        `against the ${ELECTION_MS} ms election timeout`,
    );
    say(
      NAME,
      `declared during the run: ${services.length} SUSPECT/DEAD (${dead.length} DEAD)` +
        `${services.length > 0 ? `, first ${services[0]}` : ""}; registry itself ${self.length}; ` +
        `services not ALIVE at the end: ${unwell.length}`,
    );
    const ms = (pick: (r: Round) => number) => results.map((r) => round(pick(r)));
    return {
      name: NAME,
      value,
      baseline: ELECTION_MS,
      ratio: round(value / ELECTION_MS, 3),
      unit: "ms (etcd leader SIGKILL to the first committed registry PUT, vs the election timeout)",
      heartbeat_ms: med((r) => r.heartbeatMs),
      all_services_beating_ms: med((r) => r.allServicesMs),
      new_leader_named_ms: med((r) => r.leaderSeenMs),
      write_rounds_ms: ms((r) => r.writeMs),
      heartbeat_rounds_ms: ms((r) => r.heartbeatMs),
      killed: results.map((r) => r.killed),
      kill_helper_ms: ms((r) => r.killHelperMs),
      failed_heartbeats: results.reduce((s, r) => s + r.failedHeartbeats, 0),
      failed_writes: results.reduce((s, r) => s + r.failedWrites, 0),
      services: SERVICES,
      heartbeat_interval_ms: HEARTBEAT_MS,
      lease_ttl_s: 2,
      declared_dead: dead.length,
      declared_suspect_or_dead: services.length,
      ...(services.length > 0 ? { first_declared: services[0]! } : {}),
      registry_self_declared: self.length,
      not_alive_at_end: unwell.length,
      watch_ok: declared.failure() === "",
      cores: navigator.hardwareConcurrency,
    };
  } finally {
    await beats.stop();
    await writes.stop();
    await declared?.stop();
    if (started) await stopRegistry(NAME, client, started);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * SIGKILLs the leader (the kill counts from when the helper returned: the
 * member is gone by then) and waits for a committed write, a heartbeat and
 * every service's heartbeat sent after it.
 * @throws {Error} when any of them does not come within 30 s.
 */
async function killLeader(ids: readonly string[], beats: Traffic, writes: Traffic): Promise<Round> {
  const leader = await etcdLeader();
  const pids = await etcdPids();
  const called = performance.now();
  await etcdKill(leader.name);
  const killed = performance.now();
  const elected = etcdWaitLeader({ exclude: [leader.name], timeoutMs: ROUND_LIMIT_MS })
    .then(() => performance.now(), () => NaN);
  const deadline = killed + ROUND_LIMIT_MS;
  for (;;) {
    const write = writes.firstOk(killed);
    const each = ids.map((id) => beats.firstOk(killed, id)?.done ?? NaN);
    if (write && each.every((done) => !Number.isNaN(done))) {
      const all = Math.max(...each);
      const recovered = Math.max(write.done, all);
      await assertUndisturbed(pids, leader.name);
      return {
        killed: leader.name,
        writeMs: write.done - killed,
        heartbeatMs: Math.min(...each) - killed,
        allServicesMs: all - killed,
        leaderSeenMs: (await elected) - killed,
        killHelperMs: killed - called,
        failedHeartbeats: beats.failures(killed, recovered),
        failedWrites: writes.failures(killed, recovered),
      };
    }
    if (performance.now() > deadline) {
      throw new Error(
        `After killing etcd leader ${leader.name}: no ${
          write ? "heartbeat of every service" : "committed write"
        } within ${ROUND_LIMIT_MS / 1000} s`,
      );
    }
    await sleep(20);
  }
}
