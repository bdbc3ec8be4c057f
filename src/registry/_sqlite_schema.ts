import type { Role, ServiceRecord, ServiceState, Transition } from "../types/mod.ts";

/** Tables of the SQLite registry; `IF NOT EXISTS` so opening is idempotent. */
export const _SCHEMA = `
CREATE TABLE IF NOT EXISTS services (
  id TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  state TEXT NOT NULL,
  incarnation INTEGER NOT NULL,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  endpoint TEXT NOT NULL,
  parent TEXT NOT NULL,
  route TEXT NOT NULL,
  launcher TEXT NOT NULL,
  image_hash TEXT NOT NULL,
  sessions TEXT NOT NULL,
  started INTEGER NOT NULL,
  last_heartbeat INTEGER NOT NULL,
  restarts INTEGER NOT NULL,
  last_failure TEXT NOT NULL,
  updated INTEGER NOT NULL,
  options TEXT NOT NULL DEFAULT '{}',
  instance TEXT NOT NULL DEFAULT '',
  exited INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE IF NOT EXISTS transitions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL,
  incarnation INTEGER NOT NULL,
  from_state TEXT NOT NULL,
  to_state TEXT NOT NULL,
  reason TEXT NOT NULL,
  at INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS transitions_by_id ON transitions (id, seq);
CREATE TABLE IF NOT EXISTS kept_revocations (
  id TEXT PRIMARY KEY,
  incarnation INTEGER NOT NULL,
  cascade INTEGER NOT NULL,
  until INTEGER NOT NULL,
  seq INTEGER NOT NULL DEFAULT 0
) STRICT;
`;

/** A `services` row as SQLite returns it. */
export interface ServiceRow {
  id: string;
  role: string;
  state: string;
  incarnation: number;
  host: string;
  pid: number;
  endpoint: string;
  parent: string;
  route: string;
  launcher: string;
  image_hash: string;
  sessions: string;
  started: number;
  last_heartbeat: number;
  restarts: number;
  last_failure: string;
  updated: number;
  options: string;
  instance: string;
  exited: number;
}

/** Turns a row into a record. */
export function _rowToRecord(row: ServiceRow): ServiceRecord {
  return {
    id: row.id,
    role: row.role as Role,
    state: row.state as ServiceState,
    incarnation: row.incarnation,
    host: row.host,
    pid: row.pid,
    endpoint: row.endpoint,
    parent: row.parent,
    route: JSON.parse(row.route) as string[],
    launcher: row.launcher,
    imageHash: row.image_hash,
    sessions: JSON.parse(row.sessions) as string[],
    started: row.started,
    lastHeartbeat: row.last_heartbeat,
    restarts: row.restarts,
    lastFailure: row.last_failure,
    updated: row.updated,
    options: JSON.parse(row.options) as Record<string, string>,
    ...(row.instance ? { instance: row.instance } : {}),
    ...(row.exited ? { exited: true } : {}),
  };
}

/** A `transitions` row as SQLite returns it. */
export interface _TransitionRow {
  seq: number;
  id: string;
  incarnation: number;
  from_state: string;
  to_state: string;
  reason: string;
  at: number;
}

/** Turns a `transitions` row into a transition. */
export function _rowToTransition(row: _TransitionRow): Transition {
  return {
    seq: row.seq,
    id: row.id,
    incarnation: row.incarnation,
    from: row.from_state as ServiceState | "",
    to: row.to_state as ServiceState,
    reason: row.reason,
    at: row.at,
  };
}

/** The named parameters of a record's `services` row (the inverse of {@linkcode _rowToRecord}). */
export function _recordToParams(r: ServiceRecord): Record<string, string | number> {
  return {
    id: r.id,
    role: r.role,
    state: r.state,
    incarnation: r.incarnation,
    host: r.host,
    pid: r.pid,
    endpoint: r.endpoint,
    parent: r.parent,
    route: JSON.stringify(r.route),
    launcher: r.launcher,
    image_hash: r.imageHash,
    sessions: JSON.stringify(r.sessions),
    started: r.started,
    last_heartbeat: r.lastHeartbeat,
    restarts: r.restarts,
    last_failure: r.lastFailure,
    updated: r.updated,
    options: JSON.stringify(r.options ?? {}),
    instance: r.instance ?? "",
    exited: r.exited ? 1 : 0,
  };
}

/** Columns added after the first version, with their definitions; added to older stores on open. */
export const _ADDED_COLUMNS: readonly [string, string, string][] = [
  // Stores from before role options: empty for old records.
  ["services", "options", "TEXT NOT NULL DEFAULT '{}'"],
  // Stores from before instance-bound heartbeats (issue 18).
  ["services", "instance", "TEXT NOT NULL DEFAULT ''"],
  ["services", "exited", "INTEGER NOT NULL DEFAULT 0"],
  // Stores from before kept revocations had a change number: only in the full list.
  ["kept_revocations", "seq", "INTEGER NOT NULL DEFAULT 0"],
];
