/**
 * The pilot manager role (`fabricd --role pilot-manager`): submits agents
 * ("pilots") to a resource through a launcher, with cores and a walltime,
 * tracks their batch states and resubmits or reports them by policy
 * (docs/services.md "## pilot-manager"). It relays requests for the services
 * below it, so agents on compute nodes reach a queue and a pub/sub spawned
 * through it.
 * @module
 */
import { aggregatorRoutes, HeartbeatAggregator } from "../../health/aggregator.ts";
import { FabricClient } from "../../client/fabric_client.ts";
import { batchJobs } from "../../launchers/batch_jobs.ts";
import { launcherFor } from "../../launchers/mod.ts";
import { log } from "../../config/logging.ts";
import { launcherUrlProblem } from "../../types/launcher_urls.ts";
import type { RoleContext, RoleHandle, RoleModule } from "../../runtime/role.ts";
import {
  ENDED_PILOT_STATES,
  PILOT_READS_AT_ONCE,
  PilotManager,
  type PilotPolicy,
} from "./pilots.ts";
import { eachAtMost } from "../../base/at_most.ts";
import type { ServiceRecord, Transition } from "../../types/mod.ts";
import { type PilotDefaults, pilotRoutes } from "./routes.ts";

/**
 * The manager's defaults from its role options: `on` (launcher for pilots,
 * default `slurm://`), `policy` (`resubmit` or `report`, default `resubmit`),
 * `maxResubmits` (default 2).
 * @throws {TypeError} when `on` names no launcher of this build, or `policy` is neither.
 * @throws {RangeError} when `maxResubmits` is not a whole number 0-100.
 */
export function pilotManagerSettings(
  options: Record<string, string>,
): PilotDefaults & { maxResubmits: number } {
  const on = options.on ?? "slurm://";
  const problem = launcherUrlProblem(on);
  if (problem) throw new TypeError(`Invalid pilot-manager option on="${on}": ${problem.hint}`);
  const policy = options.policy ?? "resubmit";
  if (policy !== "resubmit" && policy !== "report") {
    throw new TypeError(
      `Invalid pilot-manager option policy="${policy}": use resubmit or report`,
    );
  }
  const max = options.maxResubmits ?? "2";
  if (!/^\d{1,3}$/.test(max) || Number(max) > 100) {
    throw new RangeError(
      `Invalid pilot-manager option maxResubmits="${max}": give a whole number, 0-100`,
    );
  }
  return { on, policy: policy as PilotPolicy, maxResubmits: Number(max) };
}

async function start(ctx: RoleContext): Promise<RoleHandle> {
  const settings = pilotManagerSettings(ctx.options);
  const client = new FabricClient(ctx.keys);
  const manager = new PilotManager({
    selfId: ctx.serviceId,
    spawn: ctx.spawn,
    record: async (id) => (await ctx.registry.get(id))?.record,
    stopService: async (id, reason) => {
      const record = (await ctx.registry.get(id))?.record;
      if (!record?.endpoint) return;
      await client.call({ id, url: record.endpoint }, {
        method: "POST",
        path: "/v1/stop",
        body: { reason },
      });
    },
    transition: (id, change) => ctx.registry.transition(id, change),
    batch: batchJobs,
    maxResubmits: settings.maxResubmits,
  });
  if (ctx.incarnation > 1) await adoptPilots(manager, ctx, settings.policy);
  const running = { manager, defaults: { on: settings.on, policy: settings.policy } };
  let live: typeof running | null = running;
  const unmeasure = ctx.metrics?.gauge({
    name: "pilots",
    help: "Pilots of this manager by state",
    labelNames: ["state"],
    // The manager's own states: a scrape reads nothing from the registry.
    collect: (set) => {
      const counts = new Map<string, number>();
      for (const state of manager.states()) counts.set(state, (counts.get(state) ?? 0) + 1);
      for (const [state, n] of counts) set({ state }, n);
    },
  });
  log("pilot-manager").info("Pilot manager ready: pilots on {on}, policy {policy}", {
    on: settings.on,
    policy: settings.policy,
  });
  // A pilot manager takes its pilots' agents' heartbeats, like a bridge.
  const aggregator = new HeartbeatAggregator(ctx.registry, { via: ctx.serviceId });
  const routes = pilotRoutes(() => live).route("/", aggregatorRoutes(aggregator));
  let stopped = false;
  return await Promise.resolve({
    routes,
    // The pilots' resubmissions are the manager's, counted against maxResubmits.
    restartable: (record: ServiceRecord) => manager.restartable(record.id),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      unmeasure?.();
      live = null;
      await manager.stop();
      await aggregator.stop();
    },
  });
}

/** The pilot manager role module. */
export const pilotManagerRole: RoleModule = {
  start,
  // Running agents are services of their own and outlive a lost manager; a
  // fresh one takes new pilot requests.
  replacement: "fresh",
};

/**
 * After a restart under the same ID: takes over the pilots the previous
 * incarnation submitted, its agent children in the registry. Those whose
 * agents run or are about to (`DEAD` ones are restarted by the supervisor)
 * are followed again: the relays they use are reopened (on the ports it had)
 * and their jobs followed. Those that ended are listed as ended again, in
 * the order they ended.
 */
async function adoptPilots(
  manager: PilotManager,
  ctx: RoleContext,
  policy: PilotPolicy,
): Promise<void> {
  const records = await ctx.registry.list();
  const mine = records.filter((r) => r.parent === ctx.serviceId && r.role === "agent")
    .sort((a, b) => a.updated - b.updated);
  const found: { record: ServiceRecord; transitions: Transition[] }[] = [];
  await eachAtMost(mine, PILOT_READS_AT_ONCE, async (record, i) => {
    const read = await ctx.registry.get(record.id).catch(() => undefined);
    found[i] = read ?? { record, transitions: [] };
  });
  let running = 0;
  for (const pilot of found) {
    if (!pilot || ENDED_PILOT_STATES.includes(manager.adopt(pilot, policy))) continue;
    running++;
    await followAgain(pilot.record, ctx);
  }
  if (found.length > 0) {
    log("pilot-manager").info(
      "Took over {count} pilots of the previous incarnation, {running} not ended",
      { count: found.length, running },
    );
  }
}

/** Reopens the launcher of a pilot taken over, and follows its job again. */
async function followAgain(record: ServiceRecord, ctx: RoleContext): Promise<void> {
  try {
    const launcher = launcherFor(record.launcher, { dir: ctx.dir, owner: ctx.serviceId });
    await launcher.prepare(ctx.endpoint, ctx.registries);
    await launcher.follow?.(record.id);
  } catch (error) {
    log("pilot-manager").warn("Pilot {id}: cannot take its job over: {error}", {
      id: record.id,
      error: String(error),
    });
  }
}
