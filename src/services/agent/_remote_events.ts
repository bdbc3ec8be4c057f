/**
 * Where the agent publishes task events: frames on one pub/sub WebSocket
 * (its handshake signed once; a publish is a frame sent without waiting for
 * an answer), opened again after it broke; through relays too (bridges, a
 * pilot manager), which carry WebSockets along the service's route.
 * @module
 */
import { type FabricClient, FabricRequestError } from "../../client/fabric_client.ts";
import type { FabricKeys } from "../../crypto/keys.ts";
import { log } from "../../runtime/logging.ts";
import { PubsubClient, type PubsubSubscription } from "../pubsub/pubsub_client.ts";
import type { ServiceTarget } from "./_service_target.ts";
import type { TaskEventSink } from "./agent.ts";

/** A {@linkcode TaskEventSink} on a pub/sub service found in the registry. */
export class RemoteEventSink implements TaskEventSink {
  #keys: FabricKeys;
  #client: FabricClient;
  #target: ServiceTarget;
  #life: AbortSignal;
  #socket: Promise<PubsubSubscription> | null = null;
  #closed = false;
  #logger = log("agent");

  /**
   * The pub/sub service of `target`, reached with `keys` (the socket) and
   * `client` (to explain a refused handshake); calls end when `life` aborts.
   */
  constructor(keys: FabricKeys, client: FabricClient, target: ServiceTarget, life: AbortSignal) {
    this.#keys = keys;
    this.#client = client;
    this.#target = target;
    this.#life = life;
  }

  /**
   * Publishes `message` on `topic`: over the socket it resolves once the
   * frame is sent (a refusal is logged when the service answers one).
   * @throws {FabricRequestError} when the service cannot be reached.
   */
  async publish(topic: string, message: unknown): Promise<unknown> {
    const socket = this.#open();
    try {
      (await socket).publish(topic, message);
      return undefined;
    } catch (error) {
      // The socket broke or never opened: the service may have moved.
      if (this.#socket === socket) this.#socket = null;
      this.#target.forget();
      throw error;
    }
  }

  /** Closes the socket; later publishes fail. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const socket = this.#socket;
    this.#socket = null;
    await socket?.then((s) => s.close(), () => {});
  }

  #open(): Promise<PubsubSubscription> {
    if (this.#closed) {
      return Promise.reject(new FabricRequestError("The agent's pub/sub connection is closed", 0));
    }
    if (this.#socket) return this.#socket;
    const socket = (async () => {
      const target = await this.#target.get(this.#life);
      return await new PubsubClient(this.#keys, target, { client: this.#client }).subscribe([], {
        onEvent: (event) => {
          if (event.op === "error") {
            this.#logger.warn("Pub/sub refused a task event: {error}", { error: event.message });
          }
        },
      });
    })();
    this.#socket = socket;
    socket.then((s) => {
      s.closed.then(() => {
        if (this.#socket !== socket) return;
        // Closed by the service (it stops or died): it may come back elsewhere.
        this.#socket = null;
        this.#target.forget();
      });
    }, () => {});
    return socket;
  }
}
