/**
 * The embedded registry store: SQLite through `node:sqlite`, WAL journal,
 * `synchronous=FULL`, so a write that returned survives a crash of the process.
 *
 * Heartbeats are the exception by design: they only move `lastHeartbeat`, which
 * is liveness, not data; they are kept in memory and flushed once a second, and
 * after a restart the registry waits a full TTL before declaring anyone dead.
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { ServiceRecord, Transition } from "../types/mod.ts";
import {
  type DecidedTransition,
  decideForget,
  decidePut,
  decideSession,
  decideTransition,
  LIVE_STATES,
} from "./state_machine.ts";
import {
  type BeatOutcome,
  type BeatRequest,
  type LiveEntry,
  type RegistryStore,
  StaleIncarnationError,
  type StoreChange,
  StoreFullError,
  type StoreTransition,
  UnknownServiceError,
} from "./store.ts";
import {
  _ADDED_COLUMNS,
  _recordToParams,
  _rowToRecord,
  _rowToTransition,
  _SCHEMA,
  type _TransitionRow,
  type ServiceRow,
} from "./_sqlite_schema.ts";
import { clearInterval, setInterval } from "../base/timers.ts";
import { type Revocation, revocationsOf } from "./revocations.ts";
import { checkSqliteStore } from "./sqlite_check.ts";
import { log } from "../config/logging.ts";

/** Options of {@linkcode SqliteStore.open}. */
export interface SqliteStoreOptions {
  /** How often pending heartbeats are written, in ms. Default 1000. */
  heartbeatFlushMs?: number;
  /**
   * The registry ran before on this file: it must hold the records (see
   * {@linkcode checkSqliteStore}). Default false.
   */
  mustExist?: boolean;
  /**
   * The most pages the file may hold (`PRAGMA max_page_count`): a write past
   * it fails as on a full disk. Default: SQLite's limit.
   */
  maxPageCount?: number;
}

/** How often a store that cannot write its heartbeats says so, in ms. */
const FULL_LOG_EVERY_MS = 60_000;

/** {@linkcode RegistryStore} on one SQLite file. */
export class SqliteStore implements RegistryStore {
  #db: DatabaseSync;
  #path: string;
  #records = new Map<string, ServiceRecord>();
  #pendingBeats = new Map<string, number>();
  #flushTimer: ReturnType<typeof setInterval>;
  #closed = false;
  #upsert: StatementSync;
  #insertTransition: StatementSync;
  #updateBeat: StatementSync;
  /** When the last failed heartbeat flush was logged (0: the last flush succeeded). */
  #beatsFailedLoggedAt = 0;
  #logger = log("registry");

  private constructor(db: DatabaseSync, path: string, options: SqliteStoreOptions) {
    this.#db = db;
    this.#path = path;
    this.#upsert = db.prepare(
      `INSERT INTO services (id, role, state, incarnation, host, pid, endpoint, parent, route,
         launcher, image_hash, sessions, started, last_heartbeat, restarts, last_failure, updated,
         options, instance, exited)
       VALUES (:id, :role, :state, :incarnation, :host, :pid, :endpoint, :parent, :route,
         :launcher, :image_hash, :sessions, :started, :last_heartbeat, :restarts, :last_failure,
         :updated, :options, :instance, :exited)
       ON CONFLICT(id) DO UPDATE SET role=excluded.role, state=excluded.state,
         incarnation=excluded.incarnation, host=excluded.host, pid=excluded.pid,
         endpoint=excluded.endpoint, parent=excluded.parent, route=excluded.route,
         launcher=excluded.launcher, image_hash=excluded.image_hash, sessions=excluded.sessions,
         started=excluded.started, last_heartbeat=excluded.last_heartbeat,
         restarts=excluded.restarts, last_failure=excluded.last_failure, updated=excluded.updated,
         options=excluded.options, instance=excluded.instance, exited=excluded.exited`,
    );
    this.#insertTransition = db.prepare(
      `INSERT INTO transitions (id, incarnation, from_state, to_state, reason, at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    );
    this.#updateBeat = db.prepare(
      "UPDATE services SET last_heartbeat = ? WHERE id = ? AND last_heartbeat < ?",
    );
    for (const row of db.prepare("SELECT * FROM services").all() as unknown as ServiceRow[]) {
      const record = _rowToRecord(row);
      this.#records.set(record.id, record);
    }
    this.#flushTimer = setInterval(
      () => this.#flushBeatsLogged(),
      options.heartbeatFlushMs ?? 1000,
    );
    this.#flushTimer.unref();
  }

  /**
   * Opens (creating if needed, unless `options.mustExist`) the store at
   * `path`. An existing file is checked before anything is written to it.
   * @throws {StateLostError} when `options.mustExist` and the file is gone,
   * empty or holds no records.
   * @throws {ForeignStoreError} when the file is not a fabricd registry store.
   * @throws {RangeError} when `options.maxPageCount` is not a positive integer.
   * @throws {Error} when the file cannot be opened.
   */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    checkSqliteStore(path, options.mustExist ? { mustExist: true } : {});
    // The registry is readable by its owner only; SQLite gives the WAL and
    // shared-memory files the database file's mode.
    if (path !== ":memory:" && !path.startsWith("file:")) {
      Deno.writeFileSync(path, new Uint8Array(), { append: true, create: true, mode: 0o600 });
    }
    const pages = options.maxPageCount;
    if (pages !== undefined && (!Number.isSafeInteger(pages) || pages < 1)) {
      throw new RangeError(`Invalid maxPageCount ${pages}: give a whole number, 1 or more`);
    }
    const db = new DatabaseSync(path);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;");
    db.exec(_SCHEMA);
    for (const [table, name, definition] of _ADDED_COLUMNS) {
      const columns = db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[];
      if (!columns.some((c) => c.name === name)) {
        db.exec(`ALTER TABLE ${table} ADD COLUMN ${name} ${definition}`);
      }
    }
    if (pages !== undefined) db.exec(`PRAGMA max_page_count = ${pages}`);
    return new SqliteStore(db, path, options);
  }

  get(id: string): Promise<ServiceRecord | undefined> {
    const record = this.#records.get(id);
    return Promise.resolve(record ? structuredClone(record) : undefined);
  }

  list(): Promise<ServiceRecord[]> {
    const all = [...this.#records.values()].map((r) => structuredClone(r));
    all.sort((a, b) => a.started - b.started || a.id.localeCompare(b.id));
    return Promise.resolve(all);
  }

  live(): Promise<LiveEntry[]> {
    const entries: LiveEntry[] = [];
    for (const r of this.#records.values()) {
      if (!LIVE_STATES.includes(r.state)) continue;
      const { id, incarnation, state, lastHeartbeat, updated } = r;
      entries.push({ id, incarnation, state, lastHeartbeat, updated });
    }
    return Promise.resolve(entries);
  }

  put(record: ServiceRecord, reason: string): Promise<StoreChange> {
    return attempt(() => {
      const { next, transition } = decidePut(this.#records.get(record.id), { record, reason });
      return this.#write(next, transition);
    });
  }

  transition(id: string, change: StoreTransition): Promise<StoreChange> {
    return attempt(() => {
      // The held record carries the heartbeats not yet flushed (see #heartbeat).
      const decision = decideTransition(this.#records.get(id), { ...change, id });
      if ("unchanged" in decision) {
        return { record: structuredClone(decision.unchanged), transition: null };
      }
      return this.#write(decision.next, decision.transition);
    });
  }

  heartbeat(id: string, incarnation: number, at: number): Promise<ServiceRecord> {
    return attempt(() => this.#heartbeat(id, incarnation, at));
  }

  #heartbeat(id: string, incarnation: number, at: number): ServiceRecord {
    const record = this.#records.get(id);
    if (!record) throw new UnknownServiceError(id);
    if (incarnation !== record.incarnation) {
      throw new StaleIncarnationError(id, incarnation, record.incarnation);
    }
    record.lastHeartbeat = Math.max(record.lastHeartbeat, at);
    this.#pendingBeats.set(id, record.lastHeartbeat);
    return structuredClone(record);
  }

  delete(id: string, keepUntil: number): Promise<ServiceRecord> {
    return attempt(() => {
      const removed = decideForget(this.#records.get(id), id);
      if (this.#closed) throw new Error("The registry store is closed");
      const kept = revocationsOf([removed])[0]!;
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        // The kept revocation takes the number of the record's last change:
        // a service that had not read that far gets it with the changes.
        const { last } = this.#db.prepare(
          "SELECT COALESCE(MAX(seq), 0) AS last FROM transitions WHERE id = ?",
        ).get(id) as { last: number };
        this.#db.prepare("DELETE FROM services WHERE id = ?").run(id);
        this.#db.prepare("DELETE FROM transitions WHERE id = ?").run(id);
        this.#db.prepare(
          `INSERT OR REPLACE INTO kept_revocations (id, incarnation, cascade, until, seq)
           VALUES (?, ?, ?, ?, ?)`,
        ).run(id, kept.incarnation, kept.cascade ? 1 : 0, keepUntil, last);
        this.#db.exec("COMMIT");
      } catch (error) {
        throw this.#rolledBack(error);
      }
      this.#records.delete(id);
      this.#pendingBeats.delete(id);
      return structuredClone(removed);
    });
  }

  keptRevocations(now: number, since = -1): Promise<Revocation[]> {
    return attempt(() => {
      if (this.#closed) throw new Error("The registry store is closed");
      this.#db.prepare("DELETE FROM kept_revocations WHERE until <= ?").run(now);
      const rows = this.#db.prepare(
        "SELECT id, incarnation, cascade FROM kept_revocations WHERE seq > ? ORDER BY id",
      ).all(since) as { id: string; incarnation: number; cascade: number }[];
      return rows.map((r) => ({
        id: r.id,
        incarnation: r.incarnation,
        ...(r.cascade ? { cascade: true as const } : {}),
      }));
    });
  }

  heartbeatMany(beats: readonly BeatRequest[], at: number): Promise<BeatOutcome[]> {
    return attempt(() => {
      if (this.#closed) throw new Error("The registry store is closed");
      const outcomes = beats.map((b): BeatOutcome => {
        try {
          return this.#heartbeat(b.id, b.incarnation, at);
        } catch (error) {
          if (error instanceof UnknownServiceError || error instanceof StaleIncarnationError) {
            return error;
          }
          throw error;
        }
      });
      // The whole batch in one transaction, now: its answer means committed.
      this.#flushBeats();
      return outcomes;
    });
  }

  setSession(id: string, session: string, present: boolean): Promise<ServiceRecord> {
    return attempt(() => this.#setSession(id, session, present));
  }

  #setSession(id: string, session: string, present: boolean): ServiceRecord {
    const next = decideSession(this.#records.get(id), id, session, present);
    return this.#write(next, null).record;
  }

  transitionsSince(seq: number, limit: number): Promise<Transition[]> {
    const rows = this.#db.prepare(
      "SELECT * FROM transitions WHERE seq > ? ORDER BY seq LIMIT ?",
    ).all(seq, limit) as unknown as _TransitionRow[];
    return Promise.resolve(rows.map(_rowToTransition));
  }

  history(id: string): Promise<Transition[]> {
    const rows = this.#db.prepare(
      "SELECT * FROM transitions WHERE id = ? ORDER BY seq",
    ).all(id) as unknown as _TransitionRow[];
    return Promise.resolve(rows.map(_rowToTransition));
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    clearInterval(this.#flushTimer);
    // The beats still pending are written first (on a full disk they are lost, logged).
    this.#flushBeatsLogged();
    this.#closed = true;
    this.#db.close();
    return Promise.resolve();
  }

  #write(record: ServiceRecord, change: DecidedTransition | null): StoreChange {
    if (this.#closed) throw new Error("The registry store is closed");
    let transition: Transition | null = null;
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      this.#upsert.run(_recordToParams(record));
      if (change) {
        const result = this.#insertTransition.run(
          record.id,
          record.incarnation,
          change.from,
          record.state,
          change.reason,
          record.updated,
        );
        transition = {
          seq: Number(result.lastInsertRowid),
          id: record.id,
          incarnation: record.incarnation,
          from: change.from,
          to: record.state,
          reason: change.reason,
          at: record.updated,
        };
      }
      this.#db.exec("COMMIT");
    } catch (error) {
      throw this.#rolledBack(error);
    }
    this.#records.set(record.id, structuredClone(record));
    this.#pendingBeats.delete(record.id);
    return { record: structuredClone(record), transition };
  }

  /**
   * Writes the pending heartbeats in one transaction. They stay pending until
   * it commits, so a failed flush (a full disk) loses none: the next one
   * writes them. At most one per service is pending.
   * @throws {StoreFullError} when the disk is full; the write's error otherwise.
   */
  #flushBeats(): void {
    if (this.#pendingBeats.size === 0 || this.#closed) return;
    this.#db.exec("BEGIN");
    try {
      for (const [id, at] of this.#pendingBeats) this.#updateBeat.run(at, id, at);
      this.#db.exec("COMMIT");
    } catch (error) {
      throw this.#rolledBack(error);
    }
    this.#pendingBeats.clear();
  }

  /** {@linkcode #flushBeats} on the timer and on close: a failure is logged, once a minute. */
  #flushBeatsLogged(): void {
    try {
      this.#flushBeats();
    } catch (error) {
      const now = Date.now();
      if (now - this.#beatsFailedLoggedAt < FULL_LOG_EVERY_MS) return;
      this.#beatsFailedLoggedAt = now;
      this.#logger.error(
        "Registry store {path} is full or unwritable: free space on its disk; " +
          "{pending} heartbeats are kept in memory until they can be written ({error})",
        {
          path: this.#path,
          pending: this.#pendingBeats.size,
          error: error instanceof Error ? error.message : String(error),
        },
      );
      return;
    }
    if (this.#beatsFailedLoggedAt === 0) return;
    this.#beatsFailedLoggedAt = 0;
    this.#logger.info("Registry store {path} is written again", { path: this.#path });
  }

  /**
   * Ends the transaction a write failed in, if SQLite has not rolled it back
   * itself (it does on a full disk), and says what to do about a full disk.
   */
  #rolledBack(error: unknown): unknown {
    if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
    const { errcode, message } = (error ?? {}) as { errcode?: unknown; message?: unknown };
    // SQLITE_FULL, also what a write that found no space on the disk returns. A
    // failed exec() (the COMMIT that appends to the WAL) carries only its message.
    const full = (typeof errcode === "number" && (errcode & 0xff) === 13) ||
      (typeof message === "string" && message.includes("database or disk is full"));
    return full ? new StoreFullError(this.#path, { cause: error }) : error;
  }
}

/** Runs synchronous store code, turning a throw into a rejected promise. */
function attempt<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (error) {
    return Promise.reject(error);
  }
}
