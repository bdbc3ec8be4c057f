/**
 * A service's own record in the registry: the ALIVE record it writes once
 * configured, the heartbeats that keep it ALIVE, and the final state it
 * records when it stops. One part of a running service (`runtime/service.ts`).
 * @module
 */
import type { RegistryClient } from "../client/registry_client.ts";
import { log } from "../config/logging.ts";
import type { Role, ServiceRecord, ServiceState } from "../types/mod.ts";
import type { FabricClient, Target } from "../client/fabric_client.ts";
import { AGGREGATING_ROLES } from "./aggregator.ts";
import {
  type BeatAnswer,
  type HeartbeatRelay,
  type Heartbeats,
  parentRelay,
  startHeartbeats,
} from "./heartbeat.ts";
import { beginRootIncarnation } from "./root_restart.ts";

/** What a service's record is made of. */
export interface RecordFacts {
  id: string;
  role: Role;
  host: string;
  /** Random ID of this process; heartbeats carry it. Default: none. */
  instance?: string | undefined;
  /** The endpoint registered: as the parent reaches this service. */
  endpoint: string;
  /** The parent's ID, `""` for a root service. */
  parent: string;
  route: string[];
  launcher: string;
  /** The incarnation the spawner recorded (a root's is decided here). */
  incarnation: number;
  options: Record<string, string>;
  sessions: string[];
  /** When this process started, ms since the epoch. */
  started: number;
}

/** What {@linkcode Registration.register} wrote and found. */
export interface Registered {
  record: ServiceRecord;
  /** Every record, read when this service took an old record over (else empty). */
  records: ServiceRecord[];
}

/** Options of {@linkcode Registration}. */
export interface RegistrationOptions {
  /** The parent as this service reaches it; null or absent for a root. */
  parent?: Target | null;
  /** The signed client beats to an aggregating parent go over. Default: none (no relay). */
  client?: FabricClient;
}

/** One service's registration; see the module doc. */
export class Registration {
  #registry: RegistryClient;
  #options: RegistrationOptions;
  #logger = log("service");
  #heartbeats: Heartbeats | null = null;
  #record: ServiceRecord | null = null;
  #via: HeartbeatRelay | undefined;
  #ahead: {
    id: string;
    parent: string;
    reads: Promise<[{ record: ServiceRecord } | undefined, HeartbeatRelay | undefined]>;
  } | null = null;

  /** The registration of a service through `registry`. */
  constructor(registry: RegistryClient, options: RegistrationOptions = {}) {
    this.#registry = registry;
    this.#options = options;
  }

  /** The incarnation registered, or 0 before {@linkcode register}. */
  get incarnation(): number {
    return this.#record?.incarnation ?? 0;
  }

  /**
   * Writes the service's ALIVE record. A root service (no parent) that finds
   * its old record begins its next incarnation through DEAD -> RESTARTING
   * first; a child keeps the incarnation its spawner recorded. With
   * `throughParent` (a child its bootstrap answer configured) the parent
   * writes it: {@linkcode reportReady}.
   * @throws {FabricRequestError} when the registry (or the parent) refuses or
   * cannot be reached.
   */
  async register(facts: RecordFacts, reason: string, throughParent = false): Promise<Registered> {
    if (throughParent) return await this.reportReady(facts);
    const ahead = this.#takeAhead(facts);
    const [lookup, via] = ahead
      ? await ahead.catch(() => this.#read(facts.id, facts.parent))
      : await this.#read(facts.id, facts.parent);
    const found = lookup?.record;
    const root = facts.parent === "";
    const old = found && root ? await beginRootIncarnation(this.#registry, found) : found;
    const incarnation = old && root ? old.incarnation : facts.incarnation;
    const record = aliveRecord({ ...facts, incarnation }, old);
    const registered = await this.#registry.put(record, reason);
    this.#record = registered;
    this.#via = via;
    // Only a later incarnation can have children to take over.
    const takesOver = old !== undefined && (root || facts.incarnation > 1);
    return { record: registered, records: takesOver ? await this.#registry.list() : [] };
  }

  /**
   * Registers through the parent, for a service its bootstrap answer
   * configured (docs/protocol.md 4.8): reports ready with a signed `POST
   * /v1/ready` and takes the ALIVE record the parent wrote and answers with.
   */
  async reportReady(facts: RecordFacts): Promise<Registered> {
    const { parent, client } = this.#options;
    if (!parent || !client) throw new Error("Only a child reports ready to its parent");
    const record = await client.call<ServiceRecord>(parent, {
      method: "POST",
      path: "/v1/ready",
      body: {
        id: facts.id,
        incarnation: facts.incarnation,
        instance: facts.instance ?? crypto.randomUUID(),
        started: facts.started,
      },
    });
    this.#record = record;
    const ahead = this.#takeAhead(facts);
    this.#via = ahead
      ? (await ahead.catch(() => [undefined, undefined] as const))[1]
      : await this.#relayOf(facts.parent);
    // A restarted service takes its children's records over (register() reads them too).
    return { record, records: facts.incarnation > 1 ? await this.#registry.list() : [] };
  }

  /**
   * Starts the reads {@linkcode register} needs (this service's record and its
   * parent's role) now, while the parent is still on its way to configure it:
   * over an SSH hop each is a round trip that then no longer waits on the
   * configure call. A failed read is read again by register().
   */
  prefetch(id: string, parent: string): this {
    const reads = this.#read(id, parent);
    reads.catch(() => {});
    this.#ahead = { id, parent, reads };
    return this;
  }

  /** The reads {@linkcode prefetch} started for this service and parent, once; else null. */
  #takeAhead(facts: RecordFacts) {
    const ahead = this.#ahead;
    this.#ahead = null;
    return ahead && ahead.id === facts.id && ahead.parent === facts.parent ? ahead.reads : null;
  }

  #read(id: string, parent: string) {
    return Promise.all([this.#registry.get(id), this.#relayOf(parent)]);
  }

  /**
   * Starts heartbeating the registered incarnation; `onReplaced` is called
   * when the registry says it was replaced, or no beat got through for long.
   */
  beat(
    facts: { id: string; instance?: string | undefined },
    intervalMs: number,
    onReplaced: (reason: string) => void,
    onAnswer?: (answer: BeatAnswer) => void,
  ): void {
    const incarnation = this.incarnation;
    this.#heartbeats = startHeartbeats(
      this.#registry,
      { id: facts.id, incarnation, instance: facts.instance ?? "" },
      {
        intervalMs,
        onReplaced,
        // A root service has no parent that could start another in its place:
        // fencing it off would only end the fabric while its registry is away.
        ...(this.#options.parent ? {} : { fenceMs: Number.POSITIVE_INFINITY }),
        ...(this.#via ? { via: this.#via } : {}),
        ...(onAnswer ? { onAnswer } : {}),
      },
    );
  }

  /**
   * Where beats go: to the parent when its role aggregates heartbeats (a
   * bridge, a pilot manager), else (or when that cannot be told) to the registry.
   */
  async #relayOf(parentId: string): Promise<HeartbeatRelay | undefined> {
    const { parent, client } = this.#options;
    if (!parent || !client || parent.id !== parentId) return undefined;
    try {
      const role = (await this.#registry.get(parentId))?.record.role;
      if (!role || !AGGREGATING_ROLES.includes(role)) return undefined;
      this.#logger.info("Heartbeats go through {parent} ({role})", { parent: parentId, role });
      return parentRelay(client, parent);
    } catch (error) {
      this.#logger.debug("Parent role unknown, beating to the registry: {error}", {
        error: String(error),
      });
      return undefined;
    }
  }

  /** Stops heartbeating; idempotent. */
  stopBeating(): void {
    this.#heartbeats?.stop();
  }

  /**
   * Records `state` (STOPPED, or DEAD after a fatal error) for the registered
   * incarnation. A failure to record is logged, not thrown: the service stops anyway.
   */
  async end(state: ServiceState, reason: string): Promise<void> {
    const record = this.#record;
    if (!record) return;
    try {
      await this.#registry.transition(record.id, {
        incarnation: record.incarnation,
        to: state,
        reason,
      });
    } catch (error) {
      this.#logger.warn("Could not record {state}: {error}", { state, error: String(error) });
    }
  }
}

/**
 * The ALIVE record of a service. A service taking over its own old record
 * (`old`) keeps its image hash and last failure, and counts a restart when
 * its incarnation went up.
 */
export function aliveRecord(facts: RecordFacts, old: ServiceRecord | undefined): ServiceRecord {
  const now = Date.now();
  return {
    id: facts.id,
    role: facts.role,
    state: "ALIVE",
    incarnation: facts.incarnation,
    host: facts.host,
    pid: Deno.pid,
    endpoint: facts.endpoint,
    parent: facts.parent,
    route: facts.route,
    launcher: facts.launcher,
    imageHash: old?.imageHash ?? "",
    sessions: facts.sessions,
    started: facts.started,
    lastHeartbeat: now,
    restarts: old ? old.restarts + (old.incarnation < facts.incarnation ? 1 : 0) : 0,
    lastFailure: old?.lastFailure ?? "",
    updated: now,
    options: facts.options,
    ...(facts.instance ? { instance: facts.instance } : {}),
  };
}
