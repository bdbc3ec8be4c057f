/**
 * The pilot manager's HTTP routes, under `/v1`: submit pilots, list them,
 * show one, cancel one. Signed like every management request.
 * @module
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { serviceIdSchema } from "../../types/wire.ts";
import { jsonBody, validParam } from "../../api/validate.ts";
import { pilotRequestSchema } from "../../types/pilot_schemas.ts";
import { type PilotManager, type PilotPolicy, PilotRequestError } from "./pilots.ts";

/** Defaults for what a pilot request leaves out (the manager's role options). */
export interface PilotDefaults {
  on: string;
  policy: PilotPolicy;
}

/** Pilot routes over the running manager; `current` is null until the role has started. */
export function pilotRoutes(
  current: () => { manager: PilotManager; defaults: PilotDefaults } | null,
): Hono {
  const app = new Hono();
  const running = () => {
    const found = current();
    if (!found) {
      throw new HTTPException(503, { message: "Pilot manager is starting: retry in a moment" });
    }
    return found;
  };

  app.post("/pilots", jsonBody(pilotRequestSchema), async (c) => {
    const { manager, defaults } = running();
    const body = c.req.valid("json");
    try {
      const pilots = await manager.submit({
        ...body,
        on: body.on ?? defaults.on,
        policy: body.policy ?? defaults.policy,
      });
      return c.json({ pilots }, 202);
    } catch (error) {
      if (error instanceof PilotRequestError) {
        throw new HTTPException(400, { message: error.message });
      }
      throw error;
    }
  });

  app.get("/pilots", async (c) => c.json({ pilots: await running().manager.list() }));

  app.get("/pilots/:id", async (c) => {
    const id = validParam(c, "id", serviceIdSchema);
    const pilot = await running().manager.get(id);
    if (!pilot) throw new HTTPException(404, { message: `No pilot "${id}" in this manager` });
    return c.json(pilot);
  });

  app.delete("/pilots/:id", async (c) => {
    const id = validParam(c, "id", serviceIdSchema);
    const pilot = await running().manager.cancel(id);
    if (!pilot) throw new HTTPException(404, { message: `No pilot "${id}" in this manager` });
    return c.json(pilot);
  });

  return app;
}
