/**
 * A typed client of a queue service over the signed {@linkcode FabricClient},
 * for the agent and the command line. It loads nothing of the server.
 * @module
 */
import { type FabricClient, FabricRequestError, type Target } from "./fabric_client.ts";
import { type FabricKeys, signRequest } from "../crypto/mod.ts";
import type {
  AckManyResult,
  HistoryState,
  QueueMessage,
  QueueStats,
  TaskHistoryEvent,
  TaskRecord,
  TaskReport,
} from "../types/queue_wire.ts";
import { SOCKET_PROOF_QUERY } from "../types/wire.ts";

/** Options of {@linkcode QueueClient.get}. */
export interface QueueGetOptions {
  /** Messages to take at most, 1-100. Default 1. */
  max?: number;
  /** How long to wait for a message when none is ready, ms, at most 30000. Default 0. */
  waitMs?: number;
  /** How long the messages stay invisible unless acknowledged, ms. Default 30000. */
  visibilityMs?: number;
  /** Cancels the get. */
  signal?: AbortSignal;
}

/** What {@linkcode QueueClient.cancelTask} answers. */
export type TaskCancelAnswer =
  /** It waited on the queue and is removed from it. */
  | { state: "CANCELED"; removed: true }
  /** An agent holds it (`agent` when it has reported), or it has ended: nothing was done. */
  | { state: HistoryState; removed: false; agent: string | null; taken: boolean };

/** Time allowed for an answer beyond the long-poll itself, ms. */
const ANSWER_MARGIN_MS = 15_000;

/**
 * Puts, gets and acknowledges messages on one queue service.
 *
 * Every method throws {@linkcode FabricRequestError} when the service refuses
 * or cannot be reached: status 429 when the queue is full (retry later),
 * 404 when an acked or nacked message is unknown or already acknowledged.
 */
export class QueueClient {
  #client: FabricClient;
  #target: Target;

  /** A client of the queue service `target`. */
  constructor(client: FabricClient, target: Target) {
    this.#client = client;
    this.#target = target;
  }

  /** Puts `payload` (any JSON value) on queue `name`; resolves with the message's ID. */
  async put(name: string, payload: unknown): Promise<string> {
    const answer = await this.#client.call<{ id: string }>(this.#target, {
      method: "POST",
      path: `/v1/queue/${encodeURIComponent(name)}/messages`,
      body: { payload },
    });
    return answer.id;
  }

  /**
   * Puts `message.payload` on queue `name` once per idempotency
   * `message.key`: sending it again (after a lost answer, across a restart of
   * the queue) stores nothing and answers the first put's ID with
   * `duplicate: true`. A key used for another payload is refused (409).
   */
  async putOnce(
    name: string,
    message: { payload: unknown; key: string },
  ): Promise<{ id: string; duplicate: boolean }> {
    const answer = await this.#client.call<{ id: string; duplicate?: boolean }>(this.#target, {
      method: "POST",
      path: `/v1/queue/${encodeURIComponent(name)}/messages`,
      body: { payload: message.payload, key: message.key },
    });
    return { id: answer.id, duplicate: answer.duplicate === true };
  }

  /** Takes up to `max` messages of queue `name`, waiting up to `waitMs` for one. */
  async get(name: string, options: QueueGetOptions = {}): Promise<QueueMessage[]> {
    const query = new URLSearchParams();
    if (options.max !== undefined) query.set("max", String(options.max));
    if (options.waitMs !== undefined) query.set("wait", String(options.waitMs));
    if (options.visibilityMs !== undefined) query.set("visibility", String(options.visibilityMs));
    const search = query.size > 0 ? `?${query}` : "";
    const answer = await this.#client.call<{ messages: QueueMessage[] }>(
      this.#target,
      { method: "GET", path: `/v1/queue/${encodeURIComponent(name)}/messages${search}` },
      {
        timeoutMs: (options.waitMs ?? 0) + ANSWER_MARGIN_MS,
        ...(options.signal ? { signal: options.signal } : {}),
      },
    );
    return answer.messages;
  }

  /** Acknowledges message `id` of queue `name`: it is never delivered again. */
  async ack(name: string, id: string): Promise<void> {
    await this.#client.call(this.#target, {
      method: "POST",
      path: `/v1/queue/${encodeURIComponent(name)}/messages/${encodeURIComponent(id)}/ack`,
    });
  }

  /**
   * Acknowledges the messages `ids` (at most 100) of queue `name` in one
   * request and one transaction; IDs the queue does not hold come back in
   * `unknown` instead of failing the call.
   */
  async ackMany(name: string, ids: readonly string[]): Promise<AckManyResult> {
    return await this.#client.call<AckManyResult>(this.#target, {
      method: "POST",
      path: `/v1/queue/${encodeURIComponent(name)}/acks`,
      body: { ids },
    });
  }

  /** Gives message `id` of queue `name` back: it is ready again now. */
  async nack(name: string, id: string): Promise<void> {
    await this.#client.call(this.#target, {
      method: "POST",
      path: `/v1/queue/${encodeURIComponent(name)}/messages/${encodeURIComponent(id)}/nack`,
    });
  }

  /** The task history of queue `name`, most recently submitted first. */
  async tasks(name: string, options: { state?: HistoryState; limit?: number } = {}): Promise<
    TaskRecord[]
  > {
    const query = new URLSearchParams();
    if (options.state !== undefined) query.set("state", options.state);
    if (options.limit !== undefined) query.set("limit", String(options.limit));
    const search = query.size > 0 ? `?${query}` : "";
    const answer = await this.#client.call<{ tasks: TaskRecord[] }>(this.#target, {
      method: "GET",
      path: `${tasksPath(name)}${search}`,
    });
    return answer.tasks;
  }

  /** Task `id` of queue `name` with its state changes; 404 when the history has no such task. */
  async task(name: string, id: string): Promise<{ task: TaskRecord; events: TaskHistoryEvent[] }> {
    return await this.#client.call(this.#target, {
      method: "GET",
      path: `${tasksPath(name)}/${encodeURIComponent(id)}`,
    });
  }

  /** Reports task `id`'s state to the history (what an agent sends); 404 for an unknown task. */
  async reportTask(name: string, id: string, report: TaskReport): Promise<void> {
    await this.#client.call(this.#target, {
      method: "POST",
      path: `${tasksPath(name)}/${encodeURIComponent(id)}/state`,
      body: report,
    });
  }

  /**
   * Cancels task `id` of queue `name` if it waits on the queue (it is removed
   * and CANCELED); otherwise says who holds it or how it ended.
   * @throws {FabricRequestError} 404 when the history has no such task.
   */
  async cancelTask(name: string, id: string): Promise<TaskCancelAnswer> {
    try {
      await this.#client.call(this.#target, {
        method: "POST",
        path: `${tasksPath(name)}/${encodeURIComponent(id)}/cancel`,
      });
      return { state: "CANCELED", removed: true };
    } catch (error) {
      if (!(error instanceof FabricRequestError) || error.status !== 409) throw error;
      const body = error.body as { state?: HistoryState; agent?: string | null; taken?: boolean };
      return {
        state: body.state ?? "QUEUED",
        removed: false,
        agent: body.agent ?? null,
        taken: body.taken === true,
      };
    }
  }

  /** How full queue `name` is. */
  async stats(name: string): Promise<QueueStats> {
    return await this.#client.call<QueueStats>(this.#target, {
      method: "GET",
      path: `/v1/queue/${encodeURIComponent(name)}`,
    });
  }
}

function tasksPath(name: string): string {
  return `/v1/queue/${encodeURIComponent(name)}/tasks`;
}

/** Options of {@linkcode openQueueSocket}. */
export interface OpenQueueSocketOptions {
  /**
   * Ask for batches (`?batch=1`): a queue service that has them greets the
   * socket with a `hello` frame naming its features. Default false.
   */
  batch?: boolean;
  /**
   * Ask for the service's proof (`?proof=1`): its first frame is then a signed
   * proof of who accepted the socket, to check with `openedAndProven`
   * (socket_open.ts). Default false.
   */
  proof?: boolean;
}

/**
 * Opens a WebSocket on queue `name` of `target`, with a signed handshake:
 * Deno's `WebSocket` sends the signature headers given in `headers`. The
 * socket is open when its `open` event fires; its frames are not signed
 * (docs/services.md "## queue").
 * @throws {TypeError} when the target URL is not http or https.
 */
export async function openQueueSocket(
  keys: FabricKeys,
  target: Target,
  name: string,
  options: OpenQueueSocketOptions = {},
): Promise<WebSocket> {
  return (await signedQueueSocket(keys, target, name, options)).socket;
}

/** {@linkcode openQueueSocket}, with the nonce its handshake was signed with. */
export async function signedQueueSocket(
  keys: FabricKeys,
  target: Target,
  name: string,
  options: OpenQueueSocketOptions = {},
): Promise<{ socket: WebSocket; nonce: string }> {
  const url = new URL(`/v1/queue/${encodeURIComponent(name)}/ws`, target.url);
  if (options.batch) url.searchParams.set("batch", "1");
  if (options.proof) url.searchParams.set(SOCKET_PROOF_QUERY, "1");
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`Queue URL "${target.url}" must be http or https`);
  }
  // Through a relay (a bridge, a pilot manager), the route says where it goes.
  const headers = new Headers();
  if (target.route?.length) headers.set("fabric-route", target.route.join(","));
  const signed = await signRequest(
    { method: "GET", url, headers, body: new Uint8Array() },
    keys,
    { target: target.id },
  );
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return { socket: new WebSocket(url, { headers: signed.headers }), nonce: signed.nonce };
}
