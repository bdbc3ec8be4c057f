/**
 * Issue 18, item 8: the fabric under random faults during a workload, then
 * its invariants. Runs only with FABRIC_SOAK=1 (a minute or two per run);
 * FABRIC_CHAOS_SEED=N replays a run, FABRIC_CHAOS_LOG=FILE appends each
 * run's seed and result to FILE. docs/failures.md "The chaos scenario".
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { LocalFabric } from "../../src/cli/local_fabric.ts";
import { canBeginIncarnation, canTransition } from "../../src/registry/state_machine.ts";
import type { ServiceRecord, SpawnResult } from "../../src/types/mod.ts";
import { withLocalFabric } from "./_fabric.ts";

const HEARTBEAT_MS = 1000;
const TTL_MS = 3 * HEARTBEAT_MS;
/** The supervisor's longest restart backoff. */
const MAX_BACKOFF_MS = 10_000;
const TASKS = 240;
const CHAOS_MS = 45_000;
const soak = Deno.env.get("FABRIC_SOAK") === "1";

if (!soak) console.log("chaos_test.ts: skipped, set FABRIC_SOAK=1 to run the chaos scenario");

/** mulberry32: a small seeded PRNG, so a seed replays the same faults. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Live (not stopped, not zombie) processes of the services `ids`, by ID: those
 * started as `--id ID`, and those that a warm pool started as `--warm` (no
 * `--id`: their ID comes with their pid, from `warmPids`, which the records
 * gave).
 */
function processesById(ids: Set<string>, warmPids: Map<number, string>): Map<string, number[]> {
  const found = new Map<string, number[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid)) continue;
    try {
      const args = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
      const at = args.indexOf("--id");
      const id = at >= 0 ? args[at + 1] : args.includes("--warm") ? warmPids.get(pid) : undefined;
      if (!id || !ids.has(id) || !args.includes("--role")) continue;
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (state === "Z" || state === "T" || state === "t") continue;
      found.set(id, [...(found.get(id) ?? []), pid]);
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

function signal(pid: number, name: Deno.Signal): void {
  try {
    if (pid > 0) Deno.kill(pid, name);
  } catch {
    // Gone already.
  }
}

async function spawn(
  local: LocalFabric,
  via: { id: string; url: string },
  role: string,
  options: Record<string, string> = {},
): Promise<ServiceRecord> {
  const result = await local.client.call<SpawnResult>(via, {
    method: "POST",
    path: "/v1/spawn",
    body: { role, options },
  });
  return (await local.registry.get(result.id))!.record;
}

interface Fault {
  at: number;
  kind: string;
  ids: string[];
}

Deno.test({
  name: "the fabric holds its invariants under random faults during a workload (FABRIC_SOAK=1)",
  ignore: !soak,
  fn: async () => {
    const seed = Number(Deno.env.get("FABRIC_CHAOS_SEED") ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`chaos seed=${seed} (replay: FABRIC_CHAOS_SEED=${seed} FABRIC_SOAK=1)`);
    const rand = random(seed);
    const pick = <T>(items: T[]): T => items[Math.floor(rand() * items.length)]!;
    const failures: string[] = [];
    const faults: Fault[] = [];
    let result = "FAIL";
    let summary = "";
    try {
      await withLocalFabric(async (local, dir) => {
        const root = { id: local.spawner.id, url: local.spawner.url };
        const s1 = await spawn(local, root, "spawner");
        const s2 = await spawn(local, root, "spawner");
        const at = (r: ServiceRecord) => ({ id: r.id, url: r.endpoint });
        const queue = await spawn(local, at(s1), "queue");
        const pubsub = await spawn(local, at(s1), "pubsub");
        const agentOptions = {
          queue: queue.id,
          pubsub: pubsub.id,
          cores: "2",
          visibilityMs: "5000",
          graceMs: "500",
        };
        const agents = [
          await spawn(local, at(s2), "agent", agentOptions),
          await spawn(local, at(s2), "agent", agentOptions),
        ];
        const registryId = local.registryTarget.id;
        const ids = new Set([
          registryId,
          root.id,
          s1.id,
          s2.id,
          queue.id,
          pubsub.id,
          ...agents.map((a) => a.id),
        ]);
        const parentOf = new Map<string, string>([
          [s1.id, root.id],
          [s2.id, root.id],
          [queue.id, s1.id],
          [pubsub.id, s1.id],
          ...agents.map((a) => [a.id, s2.id] as [string, string]),
        ]);
        const seqAtStart = Math.max(
          0,
          ...(await Promise.all(
            [...ids].map(async (id) =>
              Math.max(0, ...(await local.registry.get(id))!.transitions.map((t) => t.seq))
            ),
          )),
        );
        const ranFile = join(dir, "ran");
        const ranCount = async (): Promise<Set<string>> =>
          new Set((await Deno.readTextFile(ranFile).catch(() => "")).split("\n").filter(Boolean));
        const pidOf = async (id: string): Promise<number> =>
          (await local.registry.get(id).catch(() => undefined))?.record.pid ?? 0;
        const hits = new Map<string, number>();
        const faulted = new Set<string>();
        const t0 = Date.now();
        let done = false;

        // Submitter: each task once, with its ID as idempotency key, retried.
        const acked = new Set<string>();
        const submitter = (async () => {
          for (let i = 0; i < TASKS; i++) {
            const id = `tsk-chaos${String(i).padStart(4, "0")}`;
            const payload = {
              id,
              executable: "/bin/sh",
              args: ["-c", `echo ${id} >> ${ranFile}; sleep 0.5`],
            };
            for (let attempt = 0; attempt < 200 && !acked.has(id); attempt++) {
              try {
                const record = (await local.registry.get(queue.id))!.record;
                if (record.state !== "ALIVE") throw new Error(record.state);
                await local.client.call({ id: queue.id, url: record.endpoint }, {
                  method: "POST",
                  path: "/v1/queue/tasks/messages",
                  body: { payload, key: id },
                });
                acked.add(id);
              } catch {
                await sleep(250);
              }
            }
            // Faster than the agents run them (4 cores, 0.5 s each): tasks wait.
            await sleep(20);
          }
        })();

        // The pid of every incarnation seen, by which a warm-started process is found.
        const recordPids = new Map<number, string>();
        const notePids = async (): Promise<void> => {
          for (const record of await local.registry.list().catch(() => [])) {
            if (record.pid > 0) recordPids.set(record.pid, record.id);
          }
        };

        // Watchers: two processes per ID, and stalls while tasks wait.
        const overlapSince = new Map<string, number>();
        let longestOverlap = { id: "", ms: 0 };
        let lastCount = 0;
        let lastProgress = Date.now();
        let longestStall = 0;
        const watcher = (async () => {
          while (!done) {
            const now = Date.now();
            await notePids();
            for (const id of ids) {
              const count = processesById(ids, recordPids).get(id)?.length ?? 0;
              if (count >= 2) {
                const since = overlapSince.get(id) ?? now;
                overlapSince.set(id, since);
                if (now - since > longestOverlap.ms) longestOverlap = { id, ms: now - since };
              } else overlapSince.delete(id);
            }
            const ran = (await ranCount()).size;
            if (ran > lastCount || ran >= acked.size) {
              lastCount = ran;
              lastProgress = now;
            } else longestStall = Math.max(longestStall, now - lastProgress);
            await sleep(250);
          }
        })();

        // Chaos: a fault every 1.5-4 s, each service hit at most 4 times.
        const kinds = [
          "kill-agent",
          "kill-queue",
          "kill-pubsub",
          "kill-spawner",
          "kill-registry",
          "kill-root-spawner",
          "stop-agent",
          "stop-registry",
          "kill-child-then-parent",
        ];
        const allowed = (id: string) => (hits.get(id) ?? 0) < 4;
        const hit = (id: string) => {
          hits.set(id, (hits.get(id) ?? 0) + 1);
          faulted.add(id);
        };
        while (Date.now() - t0 < CHAOS_MS) {
          await sleep(1500 + rand() * 2500);
          const kind = pick(kinds);
          const agent = pick(agents).id;
          const spawner = pick([s1.id, s2.id]);
          const target = {
            "kill-agent": agent,
            "kill-queue": queue.id,
            "kill-pubsub": pubsub.id,
            "kill-spawner": spawner,
            "kill-registry": registryId,
            "kill-root-spawner": root.id,
            "stop-agent": agent,
            "stop-registry": registryId,
            "kill-child-then-parent": pick([queue.id, pubsub.id, ...agents.map((a) => a.id)]),
          }[kind]!;
          const parent = parentOf.get(target);
          if (!allowed(target) || kind === "kill-child-then-parent" && !allowed(parent!)) continue;
          const pid = await pidOf(target);
          if (pid <= 0) continue;
          faults.push({ at: Date.now() - t0, kind, ids: [target] });
          hit(target);
          if (kind.startsWith("stop-")) {
            const ms = 2000 + rand() * 3000;
            signal(pid, "SIGSTOP");
            await sleep(ms);
            signal(pid, "SIGCONT");
          } else signal(pid, "SIGKILL");
          if (kind === "kill-child-then-parent") {
            await sleep(300 + rand() * 600);
            signal(await pidOf(parent!), "SIGKILL");
            faults.at(-1)!.ids.push(parent!);
            hit(parent!);
          }
        }
        await submitter;
        // Drain: every acknowledged task runs (bounded).
        const drainUntil = Date.now() + 120_000;
        while ((await ranCount()).size < acked.size && Date.now() < drainUntil) await sleep(500);
        done = true;
        await watcher;

        // The last fault may have just hit: every service ALIVE again first (bounded).
        const settleUntil = Date.now() + 60_000;
        let down: string[] = [...ids];
        while (down.length > 0 && Date.now() < settleUntil) {
          const now = await local.registry.list().catch(() => []);
          down = [...ids].filter((id) => now.find((r) => r.id === id)?.state !== "ALIVE");
          if (down.length > 0) await sleep(500);
        }
        if (down.length > 0) failures.push(`not ALIVE again within 60 s: ${down}`);

        const ran = await ranCount();
        const lost = [...acked].filter((id) => !ran.has(id));
        if (acked.size !== TASKS) failures.push(`only ${acked.size} of ${TASKS} puts acknowledged`);
        if (lost.length) failures.push(`${lost.length} lost tasks: ${lost.slice(0, 5)}`);

        const records = await local.registry.list();
        for (const record of records) {
          const transitions = (await local.registry.get(record.id))!.transitions;
          let previous: { incarnation: number; to: string } | undefined;
          for (const t of transitions) {
            const legal = previous && t.incarnation === previous.incarnation
              ? t.from !== "" && t.from === previous.to && canTransition(t.from, t.to)
              : (!previous || t.incarnation > previous.incarnation) &&
                canBeginIncarnation(t.from, t.to);
            if (!legal) {
              failures.push(
                `illegal ${record.id} ${t.incarnation}:${t.from}->${t.to} (${t.reason})`,
              );
            }
            previous = t;
            if (t.seq > seqAtStart && t.to === "DEAD" && !faulted.has(record.id)) {
              failures.push(`false DEAD of ${record.id} (never faulted): ${t.reason}`);
            }
          }
        }
        if (longestOverlap.ms > 3000) {
          failures.push(`two live processes of ${longestOverlap.id} for ${longestOverlap.ms} ms`);
        }
        const stallBound = 2 * TTL_MS + MAX_BACKOFF_MS;
        if (longestStall > stallBound) {
          failures.push(`tasks waited ${longestStall} ms with none done (bound ${stallBound})`);
        }
        const allIds = new Set(records.map((r) => r.id));
        await notePids();
        await local.stopAll("chaos test finished");
        let left = processesById(allIds, recordPids);
        for (let i = 0; i < 40 && left.size > 0; i++) {
          await sleep(250);
          left = processesById(allIds, recordPids);
        }
        if (left.size > 0) failures.push(`left after stop --all: ${[...left.keys()]}`);
        summary = ` (faults=${faults.length} tasks=${acked.size} ran=${ran.size} ` +
          `longest stall=${longestStall} ms, longest overlap=${longestOverlap.ms} ms)`;
      }, { heartbeatMs: HEARTBEAT_MS });
      result = failures.length === 0 ? "PASS" : "FAIL";
    } finally {
      const line = `chaos seed=${seed} ${result}${summary}${
        failures.length ? `: ${failures.join("; ")}` : ""
      }`;
      console.log(line);
      for (const f of faults) console.log(`  fault +${f.at} ms ${f.kind} ${f.ids.join(" then ")}`);
      const logFile = Deno.env.get("FABRIC_CHAOS_LOG");
      if (logFile) await Deno.writeTextFile(logFile, `${line}\n`, { append: true });
    }
    assert.deepEqual(failures, [], `seed ${seed}`);
  },
});
