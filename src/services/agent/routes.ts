/**
 * The agent's HTTP routes, mounted under `/v1` of an agent service: its
 * status, the cancel of a task, and a task's output from its directory.
 * Signed like every management request.
 * @module
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { validParam } from "../../api/validate.ts";
import { singleQueries } from "../../api/query.ts";
import { _invalidField, taskIdSchema, taskLogQuerySchema } from "../../types/queue_schemas.ts";
import type { TaskLogChunk } from "../../types/queue_wire.ts";
import type { Agent } from "./agent.ts";
import type { TaskSandbox } from "./sandbox.ts";

/**
 * Agent routes over the running agent; `current` is null until the role has
 * started. Without a `sandbox` the logs route answers 404.
 */
export function agentRoutes(current: () => Agent | null, sandbox?: TaskSandbox): Hono {
  const app = new Hono();
  const agent = (): Agent => {
    const running = current();
    if (!running) {
      throw new HTTPException(503, { message: "Agent is starting or stopping: retry in a moment" });
    }
    return running;
  };

  app.get("/agent", (c) => c.json(agent().status()));

  app.post("/agent/tasks/:id/cancel", (c) => {
    const id = validParam(c, "id", taskIdSchema);
    if (!agent().cancel(id)) {
      throw new HTTPException(404, {
        message: `Task "${id}" is not on this agent: it is finished, not taken yet, or elsewhere`,
      });
    }
    return c.json({ id, canceling: true });
  });

  app.get("/agent/tasks/:id/logs", async (c) => {
    const id = validParam(c, "id", taskIdSchema);
    const query = taskLogQuerySchema.safeParse(singleQueries(c));
    if (!query.success) {
      throw new HTTPException(400, { message: _invalidField(query.error, "query") });
    }
    const { stream, offset, max } = query.data;
    const status = agent().status();
    const piece = await sandbox?.read(id, { stream, offset, max }) ?? null;
    if (!piece) {
      throw new HTTPException(404, {
        message:
          `Agent has no output of task "${id}": the task ran elsewhere, has not started, or its directory was pruned`,
      });
    }
    const running = status.running.includes(id) || status.queued.includes(id);
    const chunk: TaskLogChunk = {
      id,
      stream,
      offset: Math.min(offset, piece.size),
      ...piece,
      running,
    };
    return c.json(chunk);
  });
  return app;
}
