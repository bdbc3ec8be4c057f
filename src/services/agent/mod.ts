/**
 * The agent role (`fabricd --role agent`): takes tasks from a queue, runs
 * them in core slots without a shell, each in its own process group, and
 * publishes QUEUED, RUNNING, DONE, FAILED and CANCELED on `tasks.<id>` and
 * to the queue's task history; each task runs in its own directory, whose
 * output `GET /v1/agent/tasks/ID/logs` serves (docs/services.md "## agent").
 *
 * @example
 * ```ts
 * import { Agent } from "./src/services/agent/mod.ts";
 *
 * const messages = [{ id: "1", deliveries: 1, payload: { id: "tsk-1", executable: "/bin/true" } }];
 * const agent = new Agent({
 *   get: () => Promise.resolve(messages.splice(0)),
 *   ack: () => Promise.resolve(),
 *   nack: () => Promise.resolve(),
 * }, {
 *   publish: (topic, event) => Promise.resolve(console.log(topic, event)),
 * }, { agentId: "agt-1a2b3c4d", cores: 2 });
 * agent.start();
 * await agent.stop();
 * ```
 * @module
 */
export { agentRole, type AgentSettings, agentSettings, agentTasksDir } from "./agent_role.ts";
export {
  Agent,
  type AgentOptions,
  type AgentStatus,
  type TaskEventSink,
  type TaskQueue,
} from "./agent.ts";
export { type AcquireOptions, CoreSlots } from "./slots.ts";
export {
  agentEnv,
  type RunOptions,
  type RunResult,
  runTask,
  type TaskOutputSink,
  type TaskRun,
} from "./runner.ts";
export { agentRoutes } from "./routes.ts";
export {
  DEFAULT_KEPT_TASKS,
  DEFAULT_OUTPUT_BYTES,
  type OutputPiece,
  type OutputStream,
  TaskOutput,
  TaskSandbox,
  type TaskSandboxOptions,
} from "./sandbox.ts";
export {
  FINAL_STATES,
  type ParsedTask,
  parseTask,
  TAIL_BYTES,
  type Task,
  TASK_ID,
  TASK_STATES,
  type TaskEvent,
  taskSchema,
  type TaskState,
  taskTopic,
} from "./task.ts";
