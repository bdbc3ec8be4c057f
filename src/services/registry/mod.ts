/**
 * The registry role: the fabric's persistent record of every service, on
 * SQLite (default) or etcd, with the liveness sweeper (docs/services.md,
 * docs/protocol.md 5.3).
 * @module
 */
export {
  etcdEndpointsOf,
  registryLiveness,
  registryRole,
  sqlitePathOf,
  StoreUrlError,
} from "./registry_role.ts";
