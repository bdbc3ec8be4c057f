/**
 * The spawner's side of a spawn (DESIGN.md "Bootstrap" steps 1-7): record the
 * new service, hand out a one-time password, launch, wait for the key
 * hand-over, configure the child in its bootstrap answer, record it ALIVE on
 * its signed ready report, and report the result (docs/protocol.md 4.9).
 * @module
 */
import type { ReadyRequest, SpawnRequest } from "../types/wire.ts";
import { SpawnFailedError } from "../types/errors.ts";
import { type FabricClient, FabricRequestError } from "../client/fabric_client.ts";
import type { RegistryClient } from "../client/registry_client.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import { launcherFor } from "../launchers/mod.ts";
import type { ChildView, LaunchedProcess, Launcher, LaunchSpec } from "../launchers/launcher.ts";
import {
  EXIT,
  type RegistryEndpoint,
  type ServiceRecord,
  type ServiceState,
  type SpawnResult,
} from "../types/mod.ts";
import type { BootstrapArrival, ExpectedChild, KeyHandover } from "../bootstrap/handover.ts";
import { newPlan, restartPlan, type SpawnPlan } from "./spawn_plan.ts";
import { warmPoolOf } from "./warm_pool.ts";
import { retry } from "../config/retry.ts";
import type { SpawnProgress, SpawnProgressListener } from "../types/spawn_progress.ts";
import { after } from "../base/timers.ts";

/** What a spawn needs from the service that runs it. */
export interface SpawnDeps {
  keys: FabricKeys;
  client: FabricClient;
  registry: RegistryClient;
  handover: KeyHandover;
  /** The spawning service: the parent of the new one. */
  self: { id: string; url: string; route: string[] };
  /** The spawner's state directory (children's logs, SSH sockets, caches). */
  dir: string;
  /** Registries as the spawner reaches them. */
  registries: RegistryEndpoint[];
  /** Heartbeat interval handed to children, ms. */
  heartbeatMs: number;
  /** Time allowed from launch to key hand-over, ms. Default 30000. */
  bootstrapTimeoutMs?: number;
  /** Launcher to use instead of the one `request.on` names (tests wrap the real one). */
  launcher?: Launcher;
  /** Called once the new service is on record, before it is launched. */
  onRecorded?: (service: { id: string; incarnation: number }) => void;
  /** Called with each launched child, so the spawner can watch it. */
  onLaunched?: (child: LaunchedProcess, service: { id: string; incarnation: number }) => void;
  /**
   * Told of each step as it begins: prepare, copy (an image to a host, with
   * bytes), launch, bootstrap, configure. Default: nobody.
   */
  onProgress?: SpawnProgressListener;
}

const EXIT_REASONS: Record<number, string> = {
  [EXIT.UNREACHABLE]: "the new service could not reach its parent to bootstrap",
  [EXIT.REFUSED]: "the parent refused the new service's one-time password",
  [EXIT.CONFIG]: "the new service found its configuration unusable",
  [EXIT.USAGE]: "the new service refused its command line",
};

/**
 * Grows the fabric by one service, or (with `request.restart`) restarts a dead
 * child under its old ID with the next incarnation, through its original
 * launcher; returns `{id, endpoint, state}`.
 *
 * @throws {SpawnFailedError} with the reason (and the child's exit code) when
 * launch, bootstrap or configure fail; the password is discarded by then.
 * @throws {ConflictError} (`spawn_plan.ts`) when a restart is asked of a service that is not this
 * service's child or is not dead.
 */
export async function spawnService(request: SpawnRequest, deps: SpawnDeps): Promise<SpawnResult> {
  const plan = request.restart ? await restartPlan(request.restart, deps) : newPlan(request, deps);
  const { record } = plan;
  const id = record.id;
  const launcher = deps.launcher ?? launcherFor(record.launcher, {
    dir: deps.dir,
    owner: deps.self.id,
  });
  const report = reporterOf(deps);
  let discard = (): void => {};
  let written = false;
  const fail = async (reason: string, exitCode: number | null): Promise<never> => {
    discard();
    if (written) await recordFailure(deps.registry, record, plan.restart, { reason, exitCode });
    const what = plan.restart ? "Restart" : "Spawn";
    throw new SpawnFailedError(id, `${what} of ${record.role} "${id}" failed: ${reason}`, exitCode);
  };
  // A new service is on record before anything else; a restart only once the
  // host answers, so an unreachable host leaves the dead record as it was and
  // the old instance can still be taken back.
  if (!plan.restart) {
    await deps.registry.put(record, plan.reason);
    written = true;
    // Under way from now on: a cold copy of the image can take long, and the
    // supervisor must not end a LAUNCHING record that is still being prepared.
    deps.onRecorded?.({ id, incarnation: record.incarnation });
  }
  let view;
  try {
    report({ step: "prepare", detail: launcher.url });
    view = await launcher.prepare(deps.self.url, deps.registries, {
      onProgress: report,
      recheck: plan.restart,
    });
  } catch (error) {
    return await fail(`cannot prepare ${launcher.url}: ${messageOf(error)}`, unreachable(error));
  }
  if (plan.restart) {
    await recordRestart(plan, deps.registry);
    written = true;
    deps.onRecorded?.({ id, incarnation: record.incarnation });
  }
  const spec: LaunchSpec = {
    id,
    args: ["--role", record.role, "--id", id],
    env: {},
    options: record.options,
  };
  const { expected, timeoutMs } = handOut(record, { spec, launcher, view, deps });
  discard = expected.discard;

  // A new service on local:// or an ssh:// host becomes a warm process of the pool when one is
  // there; restarts and launchers given by the caller always start cold.
  const pool = plan.restart || deps.launcher ? undefined : warmPoolOf(launcher);
  let child: LaunchedProcess;
  report({ step: "launch", detail: id });
  try {
    child = pool ? await pool.launch(record.role, spec) : await launcher.launch(spec);
  } catch (error) {
    pool?.refill(record.role);
    return await fail(`launch failed: ${messageOf(error)}`, unreachable(error));
  }
  deps.onLaunched?.(child, { id, incarnation: record.incarnation });
  report({ step: "bootstrap", detail: id });

  try {
    const arrival = await awaitArrival(child, expected.arrived, timeoutMs, fail);
    return await configureChild(record, { arrival, child, expected }, deps, fail);
  } finally {
    // Refilled once this spawn is done, so the new warm process's start does
    // not compete with this one for the CPU.
    pool?.refill(record.role);
  }
}

/** 69 when `error` means the target cannot be reached (no image to ship, an ssh host down). */
function unreachable(error: unknown): number | null {
  const name = error instanceof Error ? error.name : "";
  const sshDown = name === "SshError" && (error as { unreachable?: unknown }).unreachable === true;
  return name === "ImageUnavailableError" || sshDown ? EXIT.UNREACHABLE : null;
}

/**
 * Hands out the new service's one-time password (with what its certificate
 * will say) and puts it, the parent and the root's pin into the launch's
 * environment. A batch job may wait in its queue: its password lives as long
 * as that wait.
 */
function handOut(
  record: ServiceRecord,
  launch: { spec: LaunchSpec; launcher: Launcher; view: ChildView; deps: SpawnDeps },
): { expected: ExpectedChild; timeoutMs: number } {
  const { spec, launcher, view, deps } = launch;
  const timeoutMs = launcher.bootstrapWindowMs?.(spec) ?? deps.bootstrapTimeoutMs ?? 30_000;
  const expected = deps.handover.expect(record.id, {
    view,
    ...(launcher.bootstrapWindowMs ? { ttlMs: timeoutMs } : {}),
    claims: {
      role: record.role,
      incarnation: record.incarnation,
      route: record.route,
      peers: peersOf(record.options),
    },
  });
  spec.env = {
    FABRIC_OTP: expected.password,
    FABRIC_PARENT: `${deps.self.id}@${view.parentUrl}`,
    FABRIC_PIN: (deps.keys.root ?? deps.keys).fingerprint,
  };
  return { expected, timeoutMs };
}

/** DEAD -> RESTARTING on record: a suspect service is declared dead first. */
async function recordRestart(plan: SpawnPlan, registry: RegistryClient): Promise<void> {
  const { record } = plan;
  if (plan.from === "SUSPECT") {
    await registry.transition(record.id, {
      incarnation: record.incarnation - 1,
      to: "DEAD",
      reason: "restart requested while SUSPECT",
    });
  }
  await registry.put(record, plan.reason);
}

/**
 * Waits for the launched child to prove its password, and for its endpoint
 * as the parent reaches it; `fail` ends the spawn when it exits, times out or
 * cannot be reached.
 */
async function awaitArrival(
  child: LaunchedProcess,
  arrived: Promise<BootstrapArrival>,
  timeoutMs: number,
  fail: (reason: string, exitCode: number | null) => Promise<never>,
): Promise<BootstrapArrival> {
  const timeout = after(timeoutMs, { kind: "timeout" as const });
  const outcome = await Promise.race([
    arrived.then((arrival) => ({ kind: "arrived" as const, arrival })),
    child.exited.then((code) => ({ kind: "exited" as const, code })),
    timeout.promise,
  ]);
  timeout.cancel();
  if (outcome.kind === "exited") {
    const why = EXIT_REASONS[outcome.code] ?? child.endReason?.() ??
      "the new service exited before bootstrap";
    return await fail(`${why} (exit ${outcome.code}, log ${child.logFile})`, outcome.code);
  }
  if (outcome.kind === "timeout") {
    child.kill("SIGKILL");
    return await fail(`no bootstrap within ${timeoutMs} ms (log ${child.logFile})`, null);
  }
  try {
    return { ...outcome.arrival, endpoint: await child.reach(outcome.arrival.endpoint) };
  } catch (error) {
    child.kill("SIGTERM");
    return await fail(`cannot reach the new service: ${messageOf(error)}`, null);
  }
}

/**
 * Records why a spawn or restart failed, retrying (200 ms doubling to 2 s, for
 * at most 30 s) while the registry cannot be reached, so no record is left
 * LAUNCHING with no process. A restart that failed without the child's fault
 * is DEAD (its parent restarts it again, with backoff); exit 79 is FAILED
 * then LOST; a first spawn is FAILED.
 */
async function recordFailure(
  registry: RegistryClient,
  record: ServiceRecord,
  restart: boolean,
  failure: { reason: string; exitCode: number | null },
): Promise<void> {
  const { id, incarnation } = record;
  const lost = failure.exitCode === EXIT.STATE_LOST;
  const steps: { to: ServiceState; reason: string; exited?: boolean }[] = restart && !lost
    ? [{ to: "DEAD", reason: failure.reason, exited: true }]
    : [{ to: "FAILED", reason: failure.reason }];
  if (lost) {
    steps.push({ to: "LOST", reason: "restarted service could not pick up its old state" });
  }
  const deadline = Date.now() + 30_000;
  for (const step of steps) {
    try {
      await retry(() => registry.transition(id, { incarnation, ...step }), {
        firstDelayMs: 200,
        maxDelayMs: 2000,
        retryIf: (error, { delayMs }) =>
          error instanceof FabricRequestError && (error.status === 0 || error.status >= 500) &&
          Date.now() + delayMs <= deadline,
      });
    } catch {
      // The registry refused the step, or stayed unreachable until the deadline.
      return;
    }
  }
}

/** `deps.onProgress`, kept from breaking the spawn it watches. */
function reporterOf(deps: SpawnDeps): SpawnProgressListener {
  return (progress: SpawnProgress) => {
    try {
      deps.onProgress?.(progress);
    } catch {
      // A watcher's failure is its own: the spawn goes on.
    }
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** How long a configured child has to report that its role runs, ms (as long as it waits for a configure call). */
const READY_TIMEOUT_MS = 60_000;

/**
 * Records the proven child BOOTSTRAPPING and CONFIGURING, configures it in its
 * bootstrap answer (which waits for this), waits for its ready report and
 * records it ALIVE: the report's answer and the spawn's result.
 */
async function configureChild(
  record: ServiceRecord,
  spawned: { arrival: BootstrapArrival; child: LaunchedProcess; expected: ExpectedChild },
  deps: SpawnDeps,
  fail: (reason: string, exitCode: number | null) => Promise<never>,
): Promise<SpawnResult> {
  const { arrival, child, expected } = spawned;
  const { id, incarnation } = record;
  const placed = { host: arrival.host, pid: arrival.pid, endpoint: arrival.endpoint };
  reporterOf(deps)({ step: "configure", detail: arrival.endpoint });
  try {
    await deps.registry.put(
      { ...record, state: "BOOTSTRAPPING", ...placed },
      "one-time password accepted, keys handed over",
    );
    await deps.registry.transition(id, {
      incarnation,
      to: "CONFIGURING",
      reason: `configuring as ${record.role}`,
    });
  } catch (error) {
    child.kill("SIGTERM");
    return await fail(`configure failed: ${messageOf(error)}`, null);
  }
  expected.configure({
    role: record.role,
    incarnation,
    parent: deps.self.id,
    route: record.route,
    launcher: record.launcher,
    endpoint: arrival.endpoint,
    heartbeatMs: deps.heartbeatMs,
    sessions: record.sessions,
    options: record.options,
  });
  const ready = await awaitReady(child, expected.ready, fail);
  try {
    const now = Date.now();
    const alive = await deps.registry.put({
      ...record,
      ...placed,
      state: "ALIVE",
      started: ready.started,
      lastHeartbeat: now,
      updated: now,
      instance: ready.instance,
    }, `${record.role} configured and running`);
    expected.settle(alive);
    return { id, endpoint: arrival.endpoint, state: alive.state };
  } catch (error) {
    expected.settle(error instanceof Error ? error : new Error(String(error)));
    child.kill("SIGTERM");
    return await fail(`configure failed: ${messageOf(error)}`, null);
  }
}

/**
 * Waits for the configured child's ready report; `fail` ends the spawn when
 * it exits first (79: a restarted service that cannot pick up its old state)
 * or does not report in time.
 */
async function awaitReady(
  child: LaunchedProcess,
  ready: Promise<ReadyRequest>,
  fail: (reason: string, exitCode: number | null) => Promise<never>,
): Promise<ReadyRequest> {
  const timeout = after(READY_TIMEOUT_MS, { kind: "timeout" as const });
  const outcome = await Promise.race([
    ready.then((report) => ({ kind: "ready" as const, report }), () => ({ kind: "gone" as const })),
    child.exited.then((code) => ({ kind: "exited" as const, code })),
    timeout.promise,
  ]);
  timeout.cancel();
  if (outcome.kind === "ready") return outcome.report;
  if (outcome.kind === "exited") {
    if (outcome.code === EXIT.STATE_LOST) {
      return await fail(
        `the service could not pick up its old state (exit ${outcome.code})`,
        outcome.code,
      );
    }
    const why = EXIT_REASONS[outcome.code] ?? "the new service exited before it was ready";
    return await fail(
      `configure failed: ${why} (exit ${outcome.code}, log ${child.logFile})`,
      outcome.code,
    );
  }
  child.kill("SIGTERM");
  if (outcome.kind === "gone") return await fail("configure failed: the spawn was abandoned", null);
  return await fail(
    `configure failed: no ready report within ${READY_TIMEOUT_MS} ms (log ${child.logFile})`,
    null,
  );
}

/** Role options that name data-plane services the new service may use (an agent's queue and pub/sub). */
const PEER_OPTIONS = ["queue", "pubsub"];

/** The services a new service's certificate lets it use, from its role options. */
export function peersOf(options: Record<string, string> | undefined): string[] {
  return PEER_OPTIONS.map((name) => options?.[name]).filter((id): id is string =>
    typeof id === "string" && /^[a-z][a-z0-9-]{1,62}$/.test(id)
  );
}
