/**
 * The agent's HTTP routes, mounted under `/v1` of an agent service: its
 * status and the cancel of a task. Signed like every management request.
 * @module
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { z } from "zod";
import { validParam } from "../../api/validate.ts";
import type { Agent } from "./agent.ts";
import { TASK_ID } from "./task.ts";

const taskIdSchema = z.string().regex(TASK_ID, "must be 1-64 letters, digits, '_' or '-'");

/** Agent routes over the running agent; `current` is null until the role has started. */
export function agentRoutes(current: () => Agent | null): Hono {
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
  return app;
}
