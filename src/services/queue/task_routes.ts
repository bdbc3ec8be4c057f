/**
 * The task history's HTTP routes, mounted under `/v1` of a queue service
 * next to the message routes: list, show, an agent's state report, and the
 * cancel of a task that still waits on the queue (docs/services.md
 * "### Task history").
 * @module
 */
import type { Context, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { jsonBody, validParam } from "../../api/validate.ts";
import { singleQueries } from "../../api/query.ts";
import {
  _invalidField,
  queueNameSchema,
  taskIdSchema,
  taskListQuerySchema,
  taskReportSchema,
} from "../../types/queue_schemas.ts";
import type { TaskReport } from "../../types/queue_wire.ts";
import type { QueueService } from "./queue.ts";

/** Adds the task routes over `queues()` to `app`. */
export function addTaskRoutes(app: Hono, queues: () => QueueService): void {
  app.get("/queue/:name/tasks", (c) => {
    const queue = validParam(c, "name", queueNameSchema);
    const query = taskListQuerySchema.safeParse(singleQueries(c));
    if (!query.success) {
      throw new HTTPException(400, { message: _invalidField(query.error, "query") });
    }
    const { state, limit } = query.data;
    return c.json({ tasks: queues().history.list(queue, state ? { state, limit } : { limit }) });
  });

  app.get("/queue/:name/tasks/:id", (c) => {
    const { queue, id } = taskOf(c);
    const found = queues().history.get(queue, id);
    if (!found) throw unknownTask(queue, id);
    return c.json(found);
  });

  app.post("/queue/:name/tasks/:id/state", jsonBody(taskReportSchema), (c) => {
    const { queue, id } = taskOf(c);
    const report = c.req.valid("json") as TaskReport;
    const task = queues().history.report(queue, id, report);
    if (!task) throw unknownTask(queue, id);
    return c.json({ id, state: task.state });
  });

  app.post("/queue/:name/tasks/:id/cancel", (c) => {
    const { queue, id } = taskOf(c);
    const done = queues().cancelTask(queue, id);
    if (done.outcome === "unknown") throw unknownTask(queue, id);
    const { state, agent } = done.task;
    if (done.outcome === "canceled") return c.json({ id, state: "CANCELED" });
    const error = done.outcome === "taken"
      ? `Task "${id}" is not waiting on queue "${queue}": an agent${
        agent ? ` (${agent})` : ""
      } holds it; cancel it there`
      : `Task "${id}" has ended (${state}): there is nothing to cancel`;
    return c.json({ error, state, agent, taken: done.outcome === "taken" }, 409);
  });
}

/** The queue name and task ID of the path, validated. */
function taskOf(c: Context): { queue: string; id: string } {
  return {
    queue: validParam(c, "name", queueNameSchema),
    id: validParam(c, "id", taskIdSchema),
  };
}

function unknownTask(queue: string, id: string): HTTPException {
  return new HTTPException(404, {
    message:
      `Task "${id}" is not in the history of queue "${queue}": check the ID ("fabricd task list"); finished tasks are kept for a limited time`,
  });
}
