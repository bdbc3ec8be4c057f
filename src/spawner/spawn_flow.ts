/**
 * The spawner's side of a spawn (DESIGN.md "Bootstrap" steps 1-7): record the
 * new service, hand out a one-time password, launch, wait for the key
 * hand-over, configure with a signed call, and report the result.
 * @module
 */
import type { SpawnRequest } from "../api/schemas.ts";
import type { ConfigureAnswer } from "../api/service_handlers.ts";
import { SpawnFailedError } from "../api/service_handlers.ts";
import type { FabricClient } from "../client/fabric_client.ts";
import type { RegistryClient } from "../client/registry_client.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import { launcherFor } from "../launchers/mod.ts";
import type { LaunchedProcess, Launcher } from "../launchers/launcher.ts";
import { EXIT, type RegistryEndpoint, type ServiceRecord, type SpawnResult } from "../types/mod.ts";
import type { BootstrapArrival, KeyHandover } from "./key_handover.ts";
import { newServiceId } from "./service_id.ts";

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
  /** Called with each launched child, so the spawner can watch it. */
  onLaunched?: (id: string, child: LaunchedProcess) => void;
}

const EXIT_REASONS: Record<number, string> = {
  [EXIT.UNREACHABLE]: "the new service could not reach its parent to bootstrap",
  [EXIT.REFUSED]: "the parent refused the new service's one-time password",
  [EXIT.CONFIG]: "the new service found its configuration unusable",
  [EXIT.USAGE]: "the new service refused its command line",
};

/**
 * Grows the fabric by one service and returns `{id, endpoint, state}`.
 *
 * @throws {SpawnFailedError} with the reason (and the child's exit code) when
 * launch, bootstrap or configure fail; the password is discarded by then.
 */
export async function spawnService(request: SpawnRequest, deps: SpawnDeps): Promise<SpawnResult> {
  const id = newServiceId(request.role);
  const launcher = deps.launcher ?? launcherFor(request.on, { dir: deps.dir });
  const now = Date.now();
  const record: ServiceRecord = {
    id,
    role: request.role,
    state: "LAUNCHING",
    incarnation: 1,
    host: "",
    pid: 0,
    endpoint: "",
    parent: deps.self.id,
    route: [...deps.self.route, id],
    launcher: launcher.url,
    imageHash: "",
    sessions: request.sessions,
    started: now,
    lastHeartbeat: 0,
    restarts: 0,
    lastFailure: "",
    updated: now,
  };
  await deps.registry.put(record, `spawn requested by ${deps.self.id}`);
  let discard = (): void => {};
  const fail = async (reason: string, exitCode: number | null): Promise<never> => {
    discard();
    await deps.registry.transition(id, { incarnation: 1, to: "FAILED", reason }).catch(() => {});
    throw new SpawnFailedError(id, `Spawn of ${request.role} "${id}" failed: ${reason}`, exitCode);
  };
  let view;
  try {
    view = await launcher.prepare(deps.self.url, deps.registries);
  } catch (error) {
    return await fail(`cannot prepare ${launcher.url}: ${messageOf(error)}`, null);
  }
  const expected = deps.handover.expect(id, { view });
  discard = expected.discard;

  let child: LaunchedProcess;
  try {
    child = await launcher.launch({
      id,
      args: ["--role", request.role, "--id", id],
      env: {
        FABRIC_OTP: expected.password,
        FABRIC_PARENT: `${deps.self.id}@${view.parentUrl}`,
        FABRIC_PIN: deps.keys.fingerprint,
      },
    });
  } catch (error) {
    return await fail(`launch failed: ${messageOf(error)}`, null);
  }
  deps.onLaunched?.(id, child);

  const timeoutMs = deps.bootstrapTimeoutMs ?? 30_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    expected.arrived.then((arrival) => ({ kind: "arrived" as const, arrival })),
    child.exited.then((code) => ({ kind: "exited" as const, code })),
    new Promise<{ kind: "timeout" }>((resolve) => {
      timer = setTimeout(() => resolve({ kind: "timeout" }), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (outcome.kind === "exited") {
    const why = EXIT_REASONS[outcome.code] ?? "the new service exited before bootstrap";
    return await fail(`${why} (exit ${outcome.code}, log ${child.logFile})`, outcome.code);
  }
  if (outcome.kind === "timeout") {
    child.kill("SIGKILL");
    return await fail(`no bootstrap within ${timeoutMs} ms (log ${child.logFile})`, null);
  }
  let arrival = outcome.arrival;
  try {
    arrival = { ...arrival, endpoint: await child.reach(arrival.endpoint) };
  } catch (error) {
    child.kill("SIGTERM");
    return await fail(`cannot reach the new service: ${messageOf(error)}`, null);
  }
  return await configureChild(id, request, record, arrival, child, deps, fail);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function configureChild(
  id: string,
  request: SpawnRequest,
  record: ServiceRecord,
  arrival: BootstrapArrival,
  child: LaunchedProcess,
  deps: SpawnDeps,
  fail: (reason: string, exitCode: number | null) => Promise<never>,
): Promise<SpawnResult> {
  try {
    await deps.registry.put(
      {
        ...record,
        state: "BOOTSTRAPPING",
        host: arrival.host,
        pid: arrival.pid,
        endpoint: arrival.endpoint,
      },
      "one-time password accepted, keys handed over",
    );
    await deps.registry.transition(id, {
      incarnation: 1,
      to: "CONFIGURING",
      reason: `configuring as ${request.role}`,
    });
    const answer = await deps.client.call<ConfigureAnswer>(
      { id, url: arrival.endpoint },
      {
        method: "POST",
        path: "/v1/configure",
        body: {
          role: request.role,
          incarnation: 1,
          parent: deps.self.id,
          route: record.route,
          launcher: record.launcher,
          endpoint: arrival.endpoint,
          heartbeatMs: deps.heartbeatMs,
          sessions: request.sessions,
        },
      },
    );
    return { id, endpoint: arrival.endpoint, state: answer.state };
  } catch (error) {
    child.kill("SIGTERM");
    return await fail(
      `configure failed: ${messageOf(error)}`,
      null,
    );
  }
}
