/**
 * The queue role: named queues with at-least-once delivery, put and get over
 * HTTP (long-poll) and WebSocket, acknowledgement with a visibility timeout,
 * stored in SQLite, bounded per queue, with a bounded history of the tasks
 * put on it (docs/services.md "## queue").
 *
 * @example
 * ```ts
 * import { QueueClient } from "./src/services/queue/mod.ts";
 * import { FabricClient } from "./src/client/fabric_client.ts";
 * import { readKeyFile } from "./src/crypto/keys.ts";
 *
 * const keys = await readKeyFile("fabric.key");
 * const queue = new QueueClient(new FabricClient(keys), {
 *   id: "que-1a2b3c4d",
 *   url: "http://127.0.0.1:7001",
 * });
 * await queue.put("jobs", { task: 1 });
 * for (const message of await queue.get("jobs", { max: 10, waitMs: 5000 })) {
 *   await queue.ack("jobs", message.id);
 * }
 * ```
 * @module
 */
export { queueRole, type QueueSettings, queueSettings, queueStorePath } from "./queue_role.ts";
export {
  type GetOptions,
  QueueService,
  type QueueServiceOptions,
  TooManyWaitersError,
  UnknownMessageError,
} from "./queue.ts";
export {
  KeyConflictError,
  type KeyedPut,
  PUT_KEY_RETENTION_MS,
  type QueueCounts,
  QueueFullError,
  QueueStore,
  type QueueStoreOptions,
} from "./queue_store.ts";
export {
  openQueueSocket,
  QueueClient,
  type QueueGetOptions,
  type TaskCancelAnswer,
} from "../../client/queue_client.ts";
export { QueueSession, type QueueSessionOptions } from "../../client/queue_session.ts";
export { queueRoutes } from "./routes.ts";
export { addTaskRoutes } from "./task_routes.ts";
export {
  type CancelOutcome,
  TaskHistory,
  type TaskHistoryOptions,
  taskIdOf,
  type TaskListOptions,
} from "./task_history.ts";
export {
  type AckManyResult,
  FINISHED_STATES,
  HISTORY_STATES,
  type HistoryState,
  MESSAGE_ID,
  PUT_KEY,
  QUEUE_LIMITS,
  QUEUE_NAME,
  type QueueClientFrame,
  type QueueMessage,
  type QueueServerFrame,
  type QueueStats,
  TASK_HISTORY_LIMITS,
  type TaskHistoryEvent,
  type TaskLogChunk,
  type TaskRecord,
  type TaskReport,
} from "../../types/queue_wire.ts";
