/**
 * The agent's queue: one {@linkcode QueueSession} (a WebSocket whose
 * handshake is signed once) for its gets, acks and nacks, opened again after
 * it broke; through relays (bridges, a pilot manager) too, which carry
 * WebSockets along the queue's route. Reports to the task history are signed
 * HTTP requests along the same route.
 * @module
 */
import { FabricClient, FabricRequestError, type Target } from "../../client/fabric_client.ts";
import type { FabricKeys } from "../../crypto/keys.ts";
import { log } from "../../config/logging.ts";
import { QueueSession } from "../../client/queue_session.ts";
import { FRAME_LINGER_MS } from "./_remote_events.ts";
import type { QueueMessage, TaskReport } from "../../types/queue_wire.ts";
import type { ServiceTarget } from "./_service_target.ts";
import type { TaskQueue } from "./agent.ts";

/** A {@linkcode TaskQueue} on a queue service found in the registry. */
export class RemoteTaskQueue implements TaskQueue {
  #keys: FabricKeys;
  #client: FabricClient;
  #target: ServiceTarget;
  #life: AbortSignal;
  #sessions = new Map<string, Promise<QueueSession>>();
  #closed = false;

  /** The queue service of `target`, reached with `keys`; calls end when `life` aborts. */
  constructor(keys: FabricKeys, target: ServiceTarget, life: AbortSignal) {
    this.#keys = keys;
    this.#client = new FabricClient(keys);
    this.#target = target;
    this.#life = life;
  }

  /** Takes messages of queue `name`; see {@linkcode TaskQueue.get}. */
  get(
    name: string,
    options: { max: number; waitMs: number; visibilityMs: number; signal?: AbortSignal },
  ): Promise<QueueMessage[]> {
    const signal = options.signal ? AbortSignal.any([options.signal, this.#life]) : this.#life;
    return this.#over(
      signal,
      name,
      (session) => session.get({ ...options, signal }),
    );
  }

  /** Acknowledges message `id` of queue `name` (batched with others on the socket). */
  ack(name: string, id: string): Promise<void> {
    return this.#over(
      this.#life,
      name,
      (session) => session.ack(id),
    );
  }

  /** Gives message `id` of queue `name` back. */
  nack(name: string, id: string): Promise<void> {
    return this.#over(
      this.#life,
      name,
      (session) => session.nack(id),
    );
  }

  /** Reports task `id`'s state to the task history of queue `name`, on the queue's socket. */
  report(name: string, id: string, report: TaskReport): Promise<void> {
    return this.#over(this.#life, name, (session) => session.report(id, report));
  }

  /** Reports task `id`'s final state, then acknowledges `messageId` (see {@linkcode TaskQueue.finish}). */
  finish(name: string, id: string, report: TaskReport, messageId: string): Promise<boolean> {
    return this.#over(this.#life, name, (session) => session.finish(id, report, messageId));
  }

  /** Closes the sockets; later calls fail. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    await Promise.all(sessions.map((s) => s.then((session) => session.close(), () => {})));
  }

  async #over<T>(
    signal: AbortSignal,
    name: string,
    overSocket: (session: QueueSession) => Promise<T>,
  ): Promise<T> {
    const target = await this.#target.get(signal);
    const session = this.#session(target, name);
    try {
      return await overSocket(await session);
    } catch (error) {
      if (error instanceof FabricRequestError && error.status === 0) {
        // The socket broke or never opened: the service may have moved.
        if (this.#sessions.get(name) === session) this.#sessions.delete(name);
        this.#target.forget();
      }
      throw error;
    }
  }

  #session(target: Target, name: string): Promise<QueueSession> {
    if (this.#closed) {
      return Promise.reject(new FabricRequestError("The agent's queue connection is closed", 0));
    }
    let session = this.#sessions.get(name);
    if (!session) {
      session = QueueSession.open(this.#keys, target, name, { lingerMs: FRAME_LINGER_MS });
      this.#sessions.set(name, session);
      const opened = session;
      opened.then((s) => {
        log("agent").info("Queue socket to {id} open for queue {name}", { id: target.id, name });
        s.closed.then(() => {
          if (this.#sessions.get(name) !== opened) return;
          // Closed by the service (it stops or died): it may come back elsewhere.
          this.#sessions.delete(name);
          this.#target.forget();
        });
      }, () => {});
    }
    return session;
  }
}
