import type { ServiceRecord } from "../src/types/mod.ts";

/** A complete service record for tests: an ALIVE root spawner unless `patch` says otherwise. */
export function serviceRecord(id: string, patch: Partial<ServiceRecord> = {}): ServiceRecord {
  return {
    id,
    role: "spawner",
    state: "ALIVE",
    incarnation: 1,
    host: "h",
    pid: 1,
    endpoint: "http://127.0.0.1:9",
    parent: "",
    route: [id],
    launcher: "local://",
    imageHash: "",
    sessions: [],
    started: 1,
    lastHeartbeat: 0,
    restarts: 0,
    lastFailure: "",
    updated: 1,
    options: {},
    ...patch,
  };
}
