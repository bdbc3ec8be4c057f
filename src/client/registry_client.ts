/**
 * Talking to the registry from a service, a command or an application. Holds
 * every registry endpoint and moves to the next one when one cannot be reached.
 * @module
 */
import type {
  RegistryEndpoint,
  RegistryEvent,
  ServiceRecord,
  ServiceState,
  Transition,
} from "../types/mod.ts";
import { type CallOptions, type FabricClient, FabricRequestError } from "./fabric_client.ts";
import type { BeatVerdict, HeartbeatBatch } from "../types/wire.ts";

/**
 * Largest answer read from the registry's listings, which grow with the
 * fabric (every record, a record's whole history, the whole revocation list),
 * bytes: 64 MiB, some 100,000 records of a busy service's 650 bytes (the
 * scale benchmark's 20,000 take 7 MiB). Other answers use the client's bound.
 */
export const MAX_LISTING_BYTES = 64 * 1024 * 1024;

/** Options of {@linkcode RegistryClient.heartbeat}. */
export interface HeartbeatCallOptions extends CallOptions {
  /** The sending process's instance ID. Default: none (not checked). */
  instance?: string;
  /** Send time, ms since the epoch. Default: none (late beats are not told apart). */
  sentAt?: number;
}

/** What {@linkcode RegistryClient.list} keeps; an absent field keeps everything. */
export interface ListFilter {
  roles?: readonly string[];
  states?: readonly string[];
  /** This service and every service below it. */
  under?: string;
}

/** Registry operations over signed requests. */
export class RegistryClient {
  #client: FabricClient;
  #endpoints: RegistryEndpoint[];
  #current = 0;

  /**
   * A client for the registry at `endpoints`.
   * @throws {TypeError} when no endpoint is given.
   */
  constructor(client: FabricClient, endpoints: RegistryEndpoint[]) {
    if (endpoints.length === 0) {
      throw new TypeError(
        'No registry endpoint: start a fabric with "fabricd up" or give the registry in the fabric file',
      );
    }
    this.#client = client;
    this.#endpoints = endpoints;
  }

  /** The registry endpoints, the one in use first. */
  get endpoints(): RegistryEndpoint[] {
    return [...this.#endpoints.slice(this.#current), ...this.#endpoints.slice(0, this.#current)];
  }

  /**
   * Every record, or those `filter` keeps (roles, states, a subtree), chosen
   * by the registry (`GET /v1/registry/services?role=&state=&under=`).
   */
  async list(options?: CallOptions, filter: ListFilter = {}): Promise<ServiceRecord[]> {
    const query = new URLSearchParams();
    if (filter.roles?.length) query.set("role", filter.roles.join(","));
    if (filter.states?.length) query.set("state", filter.states.join(","));
    if (filter.under) query.set("under", filter.under);
    const search = query.size > 0 ? `?${query}` : "";
    const answer = await this.#call<{ services: ServiceRecord[] }>(
      { method: "GET", path: `/v1/registry/services${search}` },
      { maxAnswerBytes: MAX_LISTING_BYTES, ...options },
    );
    return answer.services;
  }

  /** One record with its transitions, or undefined when unknown. */
  async get(id: string): Promise<{ record: ServiceRecord; transitions: Transition[] } | undefined> {
    try {
      return await this.#call({ method: "GET", path: `/v1/registry/services/${id}` }, {
        maxAnswerBytes: MAX_LISTING_BYTES,
      });
    } catch (error) {
      if (error instanceof FabricRequestError && error.status === 404) return undefined;
      throw error;
    }
  }

  /** Writes a whole record. */
  async put(record: ServiceRecord, reason: string): Promise<ServiceRecord> {
    const answer = await this.#call<{ record: ServiceRecord }>({
      method: "PUT",
      path: `/v1/registry/services/${record.id}`,
      body: { record, reason },
    });
    return answer.record;
  }

  /**
   * Moves a service to a new state; `exited` reports that its process ended
   * (a parent's exit report: final for the incarnation).
   */
  async transition(
    id: string,
    change: { incarnation: number; to: ServiceState; reason: string; exited?: boolean },
  ): Promise<ServiceRecord> {
    const answer = await this.#call<{ record: ServiceRecord }>({
      method: "POST",
      path: `/v1/registry/services/${id}/transitions`,
      body: change,
    });
    return answer.record;
  }

  /**
   * Records a heartbeat; answers the state the registry holds. `options`
   * may name the sending instance and the send time (docs/failures.md).
   */
  heartbeat(
    id: string,
    incarnation: number,
    options: HeartbeatCallOptions = {},
  ): Promise<{ state: ServiceState; incarnation: number; revocations?: number }> {
    const { instance, sentAt, ...call } = options;
    return this.#call({
      method: "POST",
      path: `/v1/registry/services/${id}/heartbeat`,
      body: {
        incarnation,
        ...(instance === undefined ? {} : { instance }),
        ...(sentAt === undefined ? {} : { sentAt }),
      },
    }, call);
  }

  /**
   * Sends an aggregator's batch of its subtree's heartbeats (`via`: the
   * aggregator's ID); answers one verdict per beat, in order, and the
   * registry's revocation mark (docs/protocol.md 2.11).
   * @throws {FabricRequestError} when the batch as a whole fails.
   */
  heartbeatMany(
    via: string,
    beats: HeartbeatBatch["beats"],
    options?: CallOptions,
  ): Promise<{ results: BeatVerdict[]; revocations?: number }> {
    return this.#call<{ results: BeatVerdict[]; revocations?: number }>({
      method: "POST",
      path: "/v1/registry/heartbeats",
      body: { via, beats },
    }, options);
  }

  /**
   * The revocation list: whole (no `since`), or what changed after `since`
   * (docs/protocol.md 2.11); `seq` is where to continue from.
   */
  revocations(
    since?: number,
  ): Promise<
    { seq: number; revoked: { id: string; incarnation: number; cascade?: true }[]; more: boolean }
  > {
    return this.#call({
      method: "GET",
      path: `/v1/registry/revocations${since === undefined ? "" : `?since=${since}`}`,
    }, { maxAnswerBytes: MAX_LISTING_BYTES });
  }

  /** Cuts `id` off at once: its record goes to LOST, which revokes its identity everywhere. */
  async revoke(id: string, reason: string): Promise<ServiceRecord> {
    const answer = await this.#call<{ record: ServiceRecord }>({
      method: "POST",
      path: `/v1/registry/services/${id}/revoke`,
      body: { reason },
    });
    return answer.record;
  }

  /** Reports that `id` could not be reached; answers the record as the registry holds it. */
  async report(id: string, incarnation: number, reason: string): Promise<ServiceRecord> {
    const answer = await this.#call<{ record: ServiceRecord }>({
      method: "POST",
      path: `/v1/registry/services/${id}/reports`,
      body: { incarnation, reason },
    });
    return answer.record;
  }

  /**
   * Removes an ended record (STOPPED, FAILED or LOST) from the registry;
   * answers it as it was.
   * @throws {FabricRequestError} 404 when unknown, 409 when the service has not ended.
   */
  async forget(id: string): Promise<ServiceRecord> {
    const answer = await this.#call<{ record: ServiceRecord }>({
      method: "DELETE",
      path: `/v1/registry/services/${id}`,
    });
    return answer.record;
  }

  /** Adds (`present`) or removes a session of a service. */
  async setSession(id: string, session: string, present: boolean): Promise<ServiceRecord> {
    const answer = await this.#call<{ record: ServiceRecord }>({
      method: present ? "PUT" : "DELETE",
      path: `/v1/registry/services/${id}/sessions/${encodeURIComponent(session)}`,
    });
    return answer.record;
  }

  /**
   * Follows the change stream from `since` until `signal` aborts.
   * @throws {FabricRequestError} when no registry accepts the stream.
   */
  async watch(
    since: number,
    onEvent: (event: RegistryEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const endpoint = this.#endpoints[this.#current]!;
    await this.#client.stream(endpoint, `/v1/registry/watch?since=${since}`, (event) => {
      onEvent(JSON.parse(event.data) as RegistryEvent);
    }, signal);
  }

  async #call<T>(
    request: { method: string; path: string; body?: unknown },
    options?: CallOptions,
  ): Promise<T> {
    let last: unknown;
    for (let tried = 0; tried < this.#endpoints.length; tried++) {
      const endpoint = this.#endpoints[this.#current]!;
      try {
        return await this.#client.call<T>(endpoint, request, options);
      } catch (error) {
        if (!(error instanceof FabricRequestError) || error.status !== 0) throw error;
        last = error;
        // Move on once, even when many concurrent calls fail on this endpoint.
        if (this.#endpoints[this.#current] === endpoint) {
          this.#current = (this.#current + 1) % this.#endpoints.length;
        }
      }
    }
    throw last;
  }
}
