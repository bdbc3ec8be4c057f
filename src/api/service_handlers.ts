/**
 * What the management API asks of a service. The runtime implements it with
 * plain functions; routers only validate and translate (STYLE.md rule 8).
 * @module
 */
import type { Signer } from "../crypto/certificate.ts";
import type { ServiceRecord, ServiceState, ServiceStatus, SpawnResult } from "../types/mod.ts";
import type {
  BootstrapRequest,
  ConfigureRequest,
  ConnectRequest,
  ReadyRequest,
  SpawnRequest,
} from "../types/wire.ts";
import type { SealedBundle } from "../crypto/seal.ts";
import type { SpawnProgressListener } from "../types/spawn_progress.ts";

/** The answer of a configure call. */
export interface ConfigureAnswer {
  id: string;
  role: string;
  state: ServiceState;
  incarnation: number;
}

/** The answer of a connect call. */
export interface ConnectAnswer {
  id: string;
  role: string;
  state: ServiceState;
  incarnation: number;
  endpoint: string;
  sessions: string[];
}

/** Options of {@linkcode ServiceHandlers.spawn}. */
export interface SpawnCallOptions {
  /** Told of each step; given when the client asked for a stream. Default: nobody. */
  onProgress?: SpawnProgressListener;
}

/** Everything a service does through its management API. */
export interface ServiceHandlers {
  /** `GET /v1/status`. */
  status(): ServiceStatus;
  /**
   * `POST /v1/bootstrap` from the address `source`; throws
   * {@linkcode BootstrapRefusedError} or {@linkcode RateLimitedError}.
   */
  bootstrap(request: BootstrapRequest, source: string): Promise<SealedBundle>;
  /** `POST /v1/configure`; throws {@linkcode ConflictError} when already configured. */
  configure(request: ConfigureRequest): Promise<ConfigureAnswer>;
  /**
   * `POST /v1/ready` from a child this service spawned, signed by `signer`:
   * the child's ALIVE record once written; throws {@linkcode ConflictError}
   * when no spawn of the signer waits for the report.
   */
  ready(signer: Signer, report: ReadyRequest): Promise<ServiceRecord>;
  /**
   * `POST /v1/spawn`, telling `options.onProgress` of its steps; throws
   * {@linkcode SpawnFailedError}.
   */
  spawn(request: SpawnRequest, options?: SpawnCallOptions): Promise<SpawnResult>;
  /** `POST /v1/sessions/{id}`: the sessions served afterwards. */
  openSession(session: string): Promise<string[]>;
  /** `DELETE /v1/sessions/{id}`: the sessions served afterwards. */
  closeSession(session: string): Promise<string[]>;
  /** `POST /v1/connect`. */
  connect(request: ConnectRequest): Promise<ConnectAnswer>;
  /**
   * `GET /v1/logs`: the path of this service's own log file, which the route
   * reads bounded (docs/protocol.md 5.2). Absent: the service has no log (404).
   */
  logs?(): string;
  /**
   * `POST /v1/stop`: answers first, then stops the service; `graceMs` bounds
   * the time its work gets to end (an agent's tasks: SIGTERM to SIGKILL).
   */
  stop(reason: string, graceMs?: number): Promise<void>;
  /**
   * `POST /v1/renew`: a new certificate for `signer`, a current child of this
   * service (docs/protocol.md 2.11); throws {@linkcode ConflictError} otherwise.
   */
  renew(signer: Signer): Promise<{ identity: string; expires: number }>;
}
