/**
 * The registry role: opens the store, serves the registry routes, sweeps for
 * silent services and keeps its own record alive.
 * @module
 */
import { join } from "../../base/paths.ts";
import {
  type LivenessSettings,
  livenessSettings,
  startLivenessSweeper,
} from "../../health/liveness.ts";
import type { RoleContext, RoleHandle, RoleModule } from "../../runtime/role.ts";
import { Registry } from "../../registry/registry.ts";
import { registryRoutes } from "../../registry/routes.ts";
import { SqliteStore } from "../../registry/sqlite_store.ts";
import { EtcdStore } from "../../registry/etcd_store.ts";
import { registryMetrics } from "../../registry/_registry_metrics.ts";
import { serviceLogPath } from "../../config/log_file.ts";
import { LOCAL_SOCKET, type LocalSocket, serveLocalReads } from "../../registry/local_socket.ts";

/** A store URL the registry cannot open. */
export class StoreUrlError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "StoreUrlError";
  }
}

/**
 * The SQLite path of a `--store` value: `sqlite:PATH`, or the default
 * `registry-<ID>.db` in the service's directory.
 * @throws {StoreUrlError} for any other scheme.
 */
export function sqlitePathOf(store: string | undefined, dir: string, serviceId: string): string {
  if (!store) return join(dir, `registry-${serviceId}.db`);
  if (store.startsWith("sqlite:")) return store.slice("sqlite:".length);
  throw new StoreUrlError(`Invalid --store "${store}": use sqlite:PATH or etcd://host:port,...`);
}

/** Liveness settings of a registry, from its role options. */
export function registryLiveness(options: Record<string, string>): LivenessSettings {
  const heartbeatMs = Number(options.heartbeatMs ?? "2000");
  const ttl = options.ttlMs ? { ttlMs: Number(options.ttlMs) } : {};
  return livenessSettings(heartbeatMs, ttl);
}

/**
 * The etcd members of an `etcd://h1:2379,h2:2379` store URL, as http URLs.
 * @throws {StoreUrlError} when the list is empty or malformed.
 */
export function etcdEndpointsOf(store: string): string[] {
  const hosts = store.slice("etcd://".length).split(",").map((h) => h.trim()).filter(Boolean);
  if (hosts.length === 0 || hosts.some((h) => !/^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$/.test(h))) {
    throw new StoreUrlError(`Invalid --store "${store}": use etcd://host:port[,host:port...]`);
  }
  return hosts.map((h) => `http://${h}`);
}

async function start(ctx: RoleContext): Promise<RoleHandle> {
  if (ctx.options.store?.startsWith("etcd://")) return await startOnEtcd(ctx);
  const path = sqlitePathOf(ctx.options.store, ctx.dir, ctx.serviceId);
  // A registry's records cannot be made up again: a restarted one whose store
  // is gone, empty or not a registry's fails with StateLostError (exit 79)
  // instead of silently forgetting every service (docs/failures.md).
  const store = SqliteStore.open(path, { mustExist: ctx.incarnation > 1 });
  const registry = new Registry(store);
  const measures = ctx.metrics
    ? registryMetrics(registry, ctx.metrics, { sweeps: true })
    : undefined;
  const sweeper = startLivenessSweeper(registry, registryLiveness(ctx.options), {
    onSweep: (durationMs) => measures?.onSweep(durationMs),
  });
  let live: Registry | null = registry;
  let stopped = false;
  const socket = await localReads(ctx, () => live);
  return {
    routes: registryRoutes(() => live, {
      keys: ctx.keys,
      auditLog: serviceLogPath(ctx.dir, ctx.serviceId),
    }),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await socket?.stop();
      sweeper.stop();
      measures?.stop();
      live = null;
      await registry.close();
    },
  };
}

/** The local read socket in the state directory, for `fabricd status` on this host. */
function localReads(ctx: RoleContext, live: () => Registry | null): Promise<LocalSocket | null> {
  return serveLocalReads(join(ctx.dir, LOCAL_SOCKET), {
    id: ctx.serviceId,
    fingerprint: () => ctx.keys.root?.fingerprint ?? ctx.keys.fingerprint,
    list: () => live()?.list() ?? null,
  });
}

/**
 * A replica on etcd: stateless (the records are etcd's), liveness by etcd
 * leases, so there is no sweeper; several replicas may share the cluster.
 */
async function startOnEtcd(ctx: RoleContext): Promise<RoleHandle> {
  const liveness = registryLiveness(ctx.options);
  const store = await EtcdStore.open(etcdEndpointsOf(ctx.options.store!), {
    ttlMs: liveness.ttlMs,
  });
  const registry = new Registry(store);
  const measures = ctx.metrics ? registryMetrics(registry, ctx.metrics) : undefined;
  let live: Registry | null = registry;
  let stopped = false;
  const socket = await localReads(ctx, () => live);
  return {
    routes: registryRoutes(() => live, {
      keys: ctx.keys,
      auditLog: serviceLogPath(ctx.dir, ctx.serviceId),
    }),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await socket?.stop();
      measures?.stop();
      live = null;
      await registry.close();
    },
  };
}

/** The registry role module. */
export const registryRole: RoleModule = {
  start,
  replacement: "propagate",
};
