/**
 * Stopping a fabric: every live service, or one service and everything below
 * it, in dependency order (agents and pilot managers, then queues and
 * pub/subs, then spawners and bridges, the registry last), each group waited
 * for before the next. Used by `fabricd stop`, by Ctrl-C of `up` and `demo`.
 * @module
 */
import { type FabricClient, FabricRequestError, type Target } from "../client/fabric_client.ts";
import { log } from "../config/logging.ts";
import { sleep } from "../config/retry.ts";
import type { RegistryClient } from "../client/registry_client.ts";
import { relayHops, targetFor } from "../client/route.ts";
import type { ServiceRecord } from "../types/mod.ts";
import { subtreeIds } from "../registry/record_filter.ts";
import { FINAL_STATES, PENDING_STATES, RUNNING_STATES } from "../registry/state_machine.ts";

/** Options of {@linkcode stopServices}. */
export interface StopServicesOptions {
  reason: string;
  /** Only these IDs; default every live service. */
  ids?: string[];
  /**
   * Only these services and those below them, found again at each look, so
   * a child restarted or spawned meanwhile is stopped too; not with `ids`.
   */
  under?: string[];
  /**
   * Time an agent's tasks get between SIGTERM and SIGKILL, ms, sent with each
   * stop request. Default: each agent's own (`graceMs`, 10 s).
   */
  graceMs?: number;
  /**
   * Time to wait for each service to be gone (STOPPED and no longer
   * answering), ms. Default: the grace (or 10 s) plus 5 s.
   */
  timeoutMs?: number;
  /** Called for each service as it is first asked to stop. */
  onStop?: (record: ServiceRecord) => void;
  /**
   * Called for a service that refused its stop request (a 4xx answer: a bad
   * grace, a signature it does not take); it is not asked again.
   */
  onRefused?: (record: ServiceRecord, message: string) => void;
  /**
   * Called at the end for each service still running on record that could
   * not be reached (neither along its route nor, on this host, directly),
   * with the reason: it may still run.
   */
  onUnreachable?: (record: ServiceRecord, why: string) => void;
}

/**
 * The stop order of a role (issue 12): work first (agents and pilot
 * managers), then what work talks to (queues, pub/subs), then the services
 * that start and relay (spawners, bridges), the registry last.
 */
const STOP_TIER: Readonly<Record<string, number>> = {
  agent: 0,
  "pilot-manager": 0,
  queue: 1,
  pubsub: 1,
  spawner: 2,
  bridge: 2,
  registry: 3,
};

/**
 * The order to stop `records` in, as groups stopped one after the other (the
 * services of a group at once): by role (see `STOP_TIER`), and never a
 * service before one below it, since requests to a service travel through
 * the relays above it. So a service's rank is the highest tier in its
 * subtree; within a rank, the deepest go first.
 */
export function stopOrder(records: ServiceRecord[]): ServiceRecord[][] {
  const children = new Map<string, ServiceRecord[]>();
  for (const r of records) children.set(r.parent, [...(children.get(r.parent) ?? []), r]);
  const ranks = new Map<string, number>();
  const rankOf = (r: ServiceRecord, seen: Set<string>): number => {
    const known = ranks.get(r.id);
    if (known !== undefined) return known;
    seen.add(r.id);
    let rank = STOP_TIER[r.role] ?? 2;
    for (const child of children.get(r.id) ?? []) {
      if (!seen.has(child.id)) rank = Math.max(rank, rankOf(child, seen));
    }
    ranks.set(r.id, rank);
    return rank;
  };
  const groups = new Map<string, ServiceRecord[]>();
  for (const r of records) {
    const key = `${rankOf(r, new Set())}:${r.route.length}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => {
      const [rankA, depthA] = a.split(":").map(Number) as [number, number];
      const [rankB, depthB] = b.split(":").map(Number) as [number, number];
      return rankA - rankB || depthB - depthA;
    })
    .map(([, group]) => group);
}

/**
 * Stops live services in dependency order (see {@linkcode stopOrder}): each
 * group is asked to stop and waited for until it is gone before the next, so
 * an agent gives its tasks back to a queue that still runs. Returns how many
 * were asked to stop. A spawn or restart under way is waited for (it registers
 * meanwhile) only while its spawner runs; one whose spawner is gone can never
 * come up, so it is not waited on but recorded STOPPED with the reason.
 */
export async function stopServices(
  client: FabricClient,
  registry: RegistryClient,
  options: StopServicesOptions,
): Promise<number> {
  const stopped = new Set<string>();
  const asked = new Set<string>();
  const refused = new Set<string>();
  const { ids, under } = options;
  /** The services of `all` this stop is for, running or not. */
  const scopeOf = (all: ServiceRecord[]): (r: ServiceRecord) => boolean => {
    const scope = under ? subtreeIds(all, under) : ids ? new Set(ids) : undefined;
    return (r) => (!scope || scope.has(r.id)) && !refused.has(r.id);
  };
  /** The running services of `all` this stop is for. */
  const wantedOf = (all: ServiceRecord[]): (r: ServiceRecord) => boolean => {
    const inScope = scopeOf(all);
    return (r) => RUNNING_STATES.includes(r.state) && inScope(r);
  };
  const timeoutMs = options.timeoutMs ?? (options.graceMs ?? 10_000) + 5000;
  /** Services asked but never reached, with why: reported at the end unless stopped. */
  const unreached = new Map<string, string>();
  const stopGroup = async (
    group: ServiceRecord[],
    all: ServiceRecord[],
    byId: ReadonlyMap<string, ServiceRecord>,
  ): Promise<void> => {
    await Promise.all(group.map(async (record) => {
      const routes = [targetOrNull(record, all), directTarget(record, byId)]
        .filter((t): t is Target => t !== null);
      if (routes.length === 0) {
        unreached.set(record.id, cutRoute(record, byId) ?? `it has no endpoint (${record.state})`);
        return;
      }
      if (!asked.has(record.id)) options.onStop?.(record);
      asked.add(record.id);
      for (const target of routes) {
        const answer = await askToStop(client, target, options.reason, options.graceMs);
        if (answer === true) {
          unreached.delete(record.id);
          stopped.add(record.id);
          await waitGone(client, registry, record.id, target, timeoutMs);
          return;
        }
        if (answer) {
          refused.add(record.id);
          options.onRefused?.(record, answer.refused);
          return;
        }
      }
      unreached.set(
        record.id,
        cutRoute(record, byId) ??
          `it does not answer; it runs as PID ${record.pid} on ${record.host}: kill it there`,
      );
    }));
  };
  // Services first, in order; again while any is still running, until two
  // looks half a second apart find none (a restart that was under way when
  // the stop began registers meanwhile), for at most 30 s plus the waits.
  const deadline = Date.now() + 30_000;
  let all: ServiceRecord[] = [];
  for (let quiet = 0; quiet < 2 && Date.now() < deadline;) {
    all = await registry.list();
    const wanted = wantedOf(all);
    const byId = new Map(all.map((r) => [r.id, r]));
    const records = all.filter((r) =>
      wanted(r) && r.role !== "registry" && canComeUp(r, all) &&
      !(unreached.has(r.id) && cutRoute(r, byId) !== undefined)
    );
    quiet = records.length === 0 ? quiet + 1 : 0;
    for (const group of stopOrder(records)) await stopGroup(group, all, byId);
    if (quiet < 2) await sleep(500);
  }
  const left = wantedOf(all);
  for (const record of all.filter((r) => left(r) && !canComeUp(r, all))) {
    await registry.transition(record.id, {
      incarnation: record.incarnation,
      to: "STOPPED",
      reason: `${options.reason}: its spawner ${record.parent || "(none)"} is gone, so it ` +
        `never came up from ${record.state}`,
    }).catch((error) =>
      log("stop").debug("Cannot record {id} STOPPED: {error}", {
        id: record.id,
        error: String(error),
      })
    );
  }
  all = await registry.list();
  for (const id of await keepDown(registry, all.filter(scopeOf(all)), options)) stopped.add(id);
  // Registries last: the others record STOPPED in them on the way out.
  const registries = wantedOf(all);
  for (const record of all.filter((r) => registries(r) && unreached.has(r.id))) {
    options.onUnreachable?.(record, unreached.get(record.id)!);
  }
  for (const record of all.filter((r) => registries(r) && r.role === "registry")) {
    const target = targetOrNull(record, all);
    if (!target) continue;
    options.onStop?.(record);
    const answer = await askToStop(client, target, options.reason, options.graceMs);
    if (answer !== true) {
      if (answer) options.onRefused?.(record, answer.refused);
    } else {
      stopped.add(record.id);
      // The command ends when the fabric is down: the registry's process too.
      await waitSilent(client, target, Date.now() + timeoutMs);
    }
  }
  return stopped.size;
}

/**
 * Records `STOPPED` each of `records` that is `DEAD`, which its parent would
 * restart: a stopped service stays down, whatever its state when the stop
 * came (a `FAILED` one is left to tell why it failed). Returns the IDs recorded.
 */
async function keepDown(
  registry: RegistryClient,
  records: ServiceRecord[],
  options: StopServicesOptions,
): Promise<string[]> {
  const recorded: string[] = [];
  for (const record of records.filter((r) => r.state === "DEAD")) {
    options.onStop?.(record);
    await registry.transition(record.id, {
      incarnation: record.incarnation,
      to: "STOPPED",
      reason: `${options.reason}: it was ${record.state}, and is not restarted`,
    }).then(
      () => recorded.push(record.id),
      (error) =>
        log("stop").debug("Cannot record {id} STOPPED: {error}", {
          id: record.id,
          error: String(error),
        }),
    );
  }
  return recorded;
}

/** Whether `record` runs, or is a spawn whose spawner still runs to finish it. */
function canComeUp(record: ServiceRecord, all: ServiceRecord[]): boolean {
  if (!PENDING_STATES.includes(record.state)) return true;
  const parent = all.find((r) => r.id === record.parent);
  return parent !== undefined && ["ALIVE", "SUSPECT"].includes(parent.state);
}

/** States of a service that may still have a process running (re-exported for `stop`). */
export { RUNNING_STATES };

function targetOrNull(record: ServiceRecord, all: ServiceRecord[]): Target | null {
  try {
    return targetFor(record, all);
  } catch {
    // No endpoint yet, or its route has no live relay.
    return null;
  }
}

/**
 * The service's own endpoint when it runs on this host (its record's `host`)
 * and requests to it go through relays (else its route is direct already):
 * tried when the route fails, so a service whose relay stopped (`stop
 * --only BRIDGE`) can still be stopped. A service of another host that has
 * this host's name refuses the request, which names its target.
 */
function directTarget(
  record: ServiceRecord,
  byId: ReadonlyMap<string, ServiceRecord>,
): Target | null {
  if (!record.endpoint || record.host !== Deno.hostname()) return null;
  const hops = relayHops(record, byId);
  return hops.length === 0 ? null : { id: record.id, url: record.endpoint };
}

/**
 * Why `record` can no longer be reached along its route: a relay on it has
 * ended (`STOPPED` or `LOST`) and will not come back; undefined otherwise.
 */
function cutRoute(
  record: ServiceRecord,
  byId: ReadonlyMap<string, ServiceRecord>,
): string | undefined {
  const hops = relayHops(record, byId);
  const ended = hops.find((hop) => FINAL_STATES.includes(hop.state));
  return ended &&
    `its route passes ${ended.id} (${ended.role}), which is ${ended.state}; it runs as PID ` +
      `${record.pid} on ${record.host}: kill it there, or restart the relay ("fabricd restart ` +
      `${ended.id}") and stop it again`;
}

/**
 * Asks one service to stop: true when it took the request; `{ refused }`
 * with its message when it answered 4xx (asking again would not help);
 * false when it could not be reached (already gone, declared DEAD in time,
 * or no endpoint yet), so a later look tries again.
 */
async function askToStop(
  client: FabricClient,
  target: Target,
  reason: string,
  graceMs: number | undefined,
): Promise<boolean | { refused: string }> {
  try {
    await client.call(target, {
      method: "POST",
      path: "/v1/stop",
      body: graceMs === undefined ? { reason } : { reason, graceMs },
    });
    return true;
  } catch (error) {
    if (error instanceof FabricRequestError && error.status >= 400 && error.status < 500) {
      return { refused: error.message };
    }
    return false;
  }
}

/**
 * Waits until service `id` is no longer live on record and no longer
 * answers (its process ended its stop: an agent's tasks are gone and its
 * messages given back), for at most `timeoutMs`.
 */
async function waitGone(
  client: FabricClient,
  registry: RegistryClient,
  id: string,
  target: Target,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = await registry.get(id).catch((error) => {
      log("stop").debug("Cannot read {id}: {error}", { id, error: String(error) });
      return undefined;
    });
    if (!found || !["ALIVE", "SUSPECT"].includes(found.record.state)) break;
    await sleep(50);
  }
  await waitSilent(client, target, deadline);
}

/** Waits until `target` no longer answers, until `deadline` (ms since the epoch). */
async function waitSilent(client: FabricClient, target: Target, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    const answers = await client.call(target, { method: "GET", path: "/v1/status" }, {
      timeoutMs: 1000,
    }).then(() => true, () => false);
    if (!answers) return;
    await sleep(100);
  }
}
