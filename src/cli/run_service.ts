/**
 * `fabricd --role ROLE`: runs one service until it is stopped.
 *
 * A root service (started by `fabricd up`) reads the key file given with
 * `--key`; every other service bootstraps from its parent with the one-time
 * password it reads on standard input. Exit codes follow the README's table.
 * @module
 */
import type { Rule } from "../api/authorization.ts";
import { serviceRule } from "../runtime/authority.ts";
import { join } from "../base/paths.ts";
import { KeyFileError, readKeyFile } from "../crypto/keys.ts";
import { toCliError } from "./cli_error.ts";
import { NonceJournal } from "../crypto/nonce_journal.ts";
import { ReplayCache } from "../crypto/replay_cache.ts";
import { CLOCK_SKEW_SECONDS } from "../crypto/signing.ts";
import { createApp } from "../api/app.ts";
import type { ServiceHandlers } from "../api/service_handlers.ts";
import { type GuardedServer, serveGuarded } from "../api/guarded_server.ts";
import type { HttpFrontLimits } from "../api/http_front.ts";
import { EXIT, type RegistryEndpoint, type Role } from "../types/mod.ts";
import {
  type BootstrapEnv,
  BootstrapError,
  bootstrapFromParent,
  takeBootstrapEnv,
  takeWarmHandOver,
} from "../bootstrap/child.ts";
import { flushLogs, log, setupLogging } from "../config/logging.ts";
import { loadRole, replacementOf } from "../services/roles.ts";
import { RoleSlot } from "../api/role_slot.ts";
import { StateLostError } from "../types/errors.ts";
import type { ConfigureRequest } from "../types/wire.ts";
import { FabricRequestError } from "../client/fabric_client.ts";
import { FabricService } from "../runtime/service.ts";
import type { ServiceIdentity } from "../runtime/service_spec.ts";
import { newServiceId } from "../children/service_id.ts";
import { ServiceMetrics } from "../metrics/service_metrics.ts";
import { rehearseSpawn } from "./warm_rehearsal.ts";
import { after } from "../base/timers.ts";

/** Settings of one service process, from its command line. */
export interface RunServiceOptions {
  role: Role;
  id?: string;
  /** Address to listen on. Default 127.0.0.1, port 0 (any free port). */
  hostname: string;
  port: number;
  /** State directory: logs, stores. */
  dir: string;
  /** Root services: the fabric key file. */
  keyFile?: string;
  /** Root services other than the registry: where the registry is. */
  registries: RegistryEndpoint[];
  heartbeatMs: number;
  /** Role options, e.g. `store`, `ttlMs`. */
  options: Record<string, string>;
  /** Time to wait for the spawner's configure call, ms. Default 60000. */
  configureTimeoutMs?: number;
  /** Deadlines and connection limits of the HTTP server; production defaults when absent. */
  http?: HttpFrontLimits;
  /**
   * Start warm: load the code, then wait on stdin for the ID and password a
   * spawner's pool hands over (docs/protocol.md 4.11). Default false.
   */
  warm?: boolean;
  /** Warm processes this service keeps per role it spawns on local:// (FABRIC_WARM_POOL). */
  warmPool?: number;
}

/**
 * Runs the service; resolves with the process exit code once every log line
 * is written. A non-zero exit always leaves its reason, then the code, in the
 * log (the service's standard error, which launchers send to its log file).
 */
export async function runService(options: RunServiceOptions): Promise<number> {
  let code: number;
  try {
    code = await serve(options);
  } catch (error) {
    log("runtime").fatal("Service failed: {error}", { error: String(error) });
    await flushLogs();
    throw error;
  }
  if (code !== EXIT.OK) log("runtime").error("Exiting with code {code}", { code });
  await flushLogs();
  return code;
}

/** Runs the service; resolves with the process exit code. */
async function serve(options: RunServiceOptions): Promise<number> {
  // Files a service makes (its store, WAL, nonce journal, its children's logs)
  // are its owner's alone: other users of a login node must not read them.
  Deno.umask(0o077);
  await setupLogging({ format: "json" });
  const logger = log("runtime");
  // Only this service's role is loaded (a warm process loads it before it waits).
  const module = await loadRole(options.role);
  if (!module) {
    logger.error("Role {role} is not built in this version", { role: options.role });
    return EXIT.USAGE;
  }
  if (options.warmPool !== undefined) Deno.env.set("FABRIC_WARM_POOL", String(options.warmPool));
  const who = options.warm ? await readWarmHandOver(options.role) : await readBootstrapEnv(options);
  if (typeof who === "number") return who;
  const { bootstrapEnv } = who;
  const id = who.id ?? options.id ?? newServiceId(options.role);
  const startedSeconds = Math.floor(Date.now() / 1000);
  const { replayCache, journal } = await openReplayCache(options.dir, id);
  let service: FabricService | null = null;
  const metrics = new ServiceMetrics();
  const slot = new RoleSlot();
  const app = createApp({
    metrics,
    serviceId: id,
    keys: () => service?.keys() ?? null,
    replayCache,
    notBeforeSeconds: startedSeconds - CLOCK_SKEW_SECONDS,
    handlers: handlersOf(() => service!),
    rule: ruleOf(id, () => service),
    role: slot,
  });
  // Behind a front that drops slow clients and bounds connections per peer
  // (docs/protocol.md 2.10): Deno.serve alone has no header deadline.
  let server: GuardedServer;
  try {
    server = await serveGuarded(app.fetch, {
      ...options.http,
      hostname: options.hostname,
      port: options.port,
    });
  } catch (error) {
    logger.error("Cannot listen on {hostname}:{port}: {error}", {
      hostname: options.hostname,
      port: options.port,
      error: String(error),
    });
    return EXIT.CONFIG;
  }
  const endpoint = `http://${options.hostname}:${server.addr.port}`;
  service = new FabricService(identityOf(id, endpoint, options), {
    module,
    slot,
    metrics,
    policyOf: replacementOf,
  });
  const signals = (["SIGTERM", "SIGINT"] as const).map((signal) =>
    [signal, () => service!.stop(`${signal} received`)] as const
  );
  for (const [signal, handler] of signals) Deno.addSignalListener(signal, handler);
  try {
    return await runUntilStopped(service, bootstrapEnv, options);
  } finally {
    for (const [signal, handler] of signals) Deno.removeSignalListener(signal, handler);
    // Open streams (watchers) are cut after the server's 2 s grace.
    await server.shutdown().catch((error) =>
      logger.debug("Server shutdown: {error}", { error: String(error) })
    );
    journal?.close();
  }
}

/** The fixed facts of this service process. */
function identityOf(id: string, endpoint: string, options: RunServiceOptions): ServiceIdentity {
  return {
    id,
    instance: crypto.randomUUID(),
    role: options.role,
    host: Deno.hostname(),
    dir: options.dir,
    endpoint,
    options: options.options,
  };
}

/** Who this process becomes: its bootstrap environment (null for a root) and, warm, its ID. */
interface Becoming {
  bootstrapEnv: BootstrapEnv | null;
  id?: string;
}

/** The bootstrap environment, null for a root service, or the exit code when neither is usable. */
async function readBootstrapEnv(options: RunServiceOptions): Promise<Becoming | number> {
  const logger = log("runtime");
  let bootstrapEnv;
  try {
    bootstrapEnv = await takeBootstrapEnv();
  } catch (error) {
    logger.error("{message}", { message: (error as Error).message });
    return (error as BootstrapError).exitCode ?? EXIT.CONFIG;
  }
  if (!bootstrapEnv && !options.keyFile) {
    logger.error(
      'No FABRIC_PARENT and no --key: start services with "fabricd spawn" or "fabricd up"',
    );
    return EXIT.CONFIG;
  }
  return { bootstrapEnv };
}

/**
 * A warm process (`--warm`, started ahead by a spawner's pool): waits on
 * stdin for its ID and password; exit 0 when the pipe closes first (the pool
 * stopped), 78 on a bad line or a hand-over for another role.
 */
async function readWarmHandOver(role: Role): Promise<Becoming | number> {
  const logger = log("runtime");
  await rehearseSpawn();
  let handOver;
  try {
    handOver = await takeWarmHandOver();
  } catch (error) {
    logger.error("{message}", { message: (error as Error).message });
    return (error as BootstrapError).exitCode ?? EXIT.CONFIG;
  }
  if (handOver === null) {
    logger.debug("Warm process: the pool closed its pipe, exiting");
    return EXIT.OK;
  }
  if (handOver.role !== role) {
    logger.error("Warm {role} process handed a {other}: exiting", { role, other: handOver.role });
    return EXIT.CONFIG;
  }
  logger.info("Warm process handed over as {id}", { id: handOver.id });
  return { bootstrapEnv: handOver.env, id: handOver.id };
}

/** Who may do what on service `id` (docs/protocol.md 2.12), as it learns its place. */
function ruleOf(id: string, service: () => FabricService | null): Rule {
  return serviceRule({
    id,
    route: () => service()?.route() ?? null,
    parentRoute: () => service()?.parentRoute() ?? null,
  });
}

/** The management API's handlers over the service (made once the server listens). */
function handlersOf(service: () => FabricService): ServiceHandlers {
  return {
    status: () => service().status(),
    bootstrap: (r, source) => service().bootstrap(r, source),
    configure: (r) => service().configure(r),
    ready: (signer, r) => service().ready(signer, r),
    spawn: (r, options) => service().spawn(r, options),
    openSession: (s) => service().openSession(s),
    closeSession: (s) => service().closeSession(s),
    connect: (r) => service().connect(r),
    logs: () => service().logs(),
    stop: (reason, graceMs) => service().stop(reason, graceMs),
    renew: (signer) => service().renew(signer),
  };
}

/** Makes the service ALIVE, serves until it is asked to stop, and stops it; the exit code. */
async function runUntilStopped(
  service: FabricService,
  bootstrapEnv: BootstrapEnv | null,
  options: RunServiceOptions,
): Promise<number> {
  const logger = log("runtime");
  try {
    const ready = await become(service, bootstrapEnv, options);
    if (!ready) return EXIT.CONFIG;
    const reason = await service.stopRequested;
    await service.shutdown(reason);
    logger.info("Stopped: {reason}", { reason });
    return service.exitCode;
  } catch (error) {
    if (error instanceof StateLostError) {
      logger.error("Cannot pick up the old state: {message}", { message: error.message });
      return EXIT.STATE_LOST;
    }
    if (error instanceof BootstrapError) {
      logger.error("Bootstrap failed: {message}", { message: error.message });
      return error.exitCode;
    }
    if (error instanceof KeyFileError) {
      // As for every command: a missing key file is configuration (78), an unreadable one data (65).
      logger.error("{message}", { message: error.message });
      return toCliError(error).exitCode;
    }
    logger.error("Service failed: {error}", {
      error: error instanceof Error ? error.message : String(error),
    });
    await service.shutdown(`fatal error: ${String(error)}`, "DEAD").catch((stopError) =>
      logger.debug("Shutdown after a fatal error: {error}", { error: String(stopError) })
    );
    return EXIT.FAILURE;
  }
}

/**
 * Makes `service` ALIVE: bootstraps from the parent and waits to be
 * configured, or (a root service) reads the key file and places itself.
 * Resolves false when no configure call came in time.
 */
async function become(
  service: FabricService,
  bootstrapEnv: BootstrapEnv | null,
  options: RunServiceOptions,
): Promise<boolean> {
  const logger = log("runtime");
  const { id, endpoint } = service.identity;
  if (bootstrapEnv) {
    const outcome = await bootstrapFromParent(bootstrapEnv, {
      serviceId: id,
      endpoint,
      host: service.identity.host,
    });
    service.holdKeys(outcome.keys, outcome.registries, outcome.parent);
    if (outcome.configure) {
      logger.info("Bootstrapped from {parent}, configured by its answer", {
        parent: outcome.parent.id,
      });
      await configureByAnswer(service, outcome.configure);
      return true;
    }
    logger.info("Bootstrapped from {parent}; waiting to be configured", {
      parent: outcome.parent.id,
    });
    const configured = await waitForConfigure(service, options.configureTimeoutMs ?? 60_000);
    if (!configured) {
      logger.error("No configure call within the timeout: exiting");
      return false;
    }
  } else {
    const keys = await readKeyFile(options.keyFile!);
    // A root registry registers with itself.
    const registries = options.registries.length > 0 || options.role !== "registry"
      ? options.registries
      : [{ id, url: endpoint }];
    service.holdKeys(keys, registries);
    await service.place({
      keys,
      registries,
      incarnation: 1,
      parent: "",
      route: [id],
      launcher: "local://",
      endpoint,
      heartbeatMs: options.heartbeatMs,
      sessions: [],
      options: {},
    });
  }
  return true;
}

/**
 * Configures `service` as its bootstrap answer says and reports ready to the
 * parent (docs/protocol.md 4.8).
 * @throws {StateLostError} (exit 79) when a restarted role cannot pick up its
 * old state; {@linkcode BootstrapError} 78 when the answer names another role,
 * 77 when the parent refuses the report, 69 when it cannot be reached.
 */
async function configureByAnswer(service: FabricService, request: ConfigureRequest) {
  try {
    await service.configure(request, true);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof Error && error.cause instanceof StateLostError) throw error.cause;
    if (!(error instanceof FabricRequestError)) throw new BootstrapError(message, EXIT.CONFIG);
    const code = error.status > 0 && error.status < 500 ? EXIT.REFUSED : EXIT.UNREACHABLE;
    throw new BootstrapError(`Parent refused the ready report: ${message}`, code);
  }
}

/**
 * The replay cache of service `id`. A restart must not reopen a replay
 * window: requests created before this process started (less the skew) are
 * refused, and the nonces the previous process accepted are read back from
 * its journal (docs/protocol.md 2.9).
 */
async function openReplayCache(
  dir: string,
  id: string,
): Promise<{ replayCache: ReplayCache; journal: NonceJournal | undefined }> {
  let journal: NonceJournal | undefined;
  try {
    journal = await NonceJournal.open(join(dir, "nonces"), id);
  } catch (error) {
    log("runtime").warn("No nonce journal ({error}): replays are bounded by the start time only", {
      error: String(error),
    });
  }
  const replayCache = new ReplayCache(journal ? { journal } : {});
  if (journal) replayCache.restore(journal.loaded);
  return { replayCache, journal };
}

async function waitForConfigure(service: FabricService, timeoutMs: number): Promise<boolean> {
  const timeout = after(timeoutMs, false);
  const configured = await Promise.race([
    service.placed.then(() => true),
    service.stopRequested.then(() => true),
    timeout.promise,
  ]);
  timeout.cancel();
  return configured;
}
