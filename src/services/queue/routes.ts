/**
 * The queue's HTTP routes, mounted under `/v1` of a queue service: put, get
 * (long-poll), ack (one or a batch), nack, stats, a WebSocket, and the task
 * history (`task_routes.ts`). Signed like every management
 * request; handlers validate, call {@linkcode QueueService}, shape the answer.
 * @module
 */
import { type Context, Hono } from "hono";
import { upgradeWebSocket } from "../../api/websocket.ts";
import { HTTPException } from "hono/http-exception";
import { MAX_BODY_BYTES } from "../../api/app.ts";
import { jsonBody, validParam } from "../../api/validate.ts";
import { singleQueries, singleQuery } from "../../api/query.ts";
import {
  _invalidField,
  acksBodySchema,
  getQuerySchema,
  messageIdSchema,
  putBodySchema,
  queueNameSchema,
} from "../../types/queue_schemas.ts";
import { QueueSocket } from "./_ws_session.ts";
import { type QueueService, TooManyWaitersError, UnknownMessageError } from "./queue.ts";
import { KeyConflictError, QueueFullError } from "./queue_store.ts";
import { addTaskRoutes } from "./task_routes.ts";

/** Seconds a refused put or get is told to wait before it retries. */
const RETRY_AFTER_SECONDS = "1";

/** Queue routes over the running queue service; `current` is null until the role has started. */
export function queueRoutes(current: () => QueueService | null): Hono {
  const app = new Hono();
  const queues = (): QueueService => {
    const service = current();
    if (!service || service.closed) {
      throw new HTTPException(503, { message: "Queue service is starting: retry in a moment" });
    }
    return service;
  };
  addMessageRoutes(app, queues);
  addTaskRoutes(app, queues);
  addSocketRoute(app, queues);
  return app;
}

/** The queue name of the path, validated. */
function name(c: Context): string {
  return validParam(c, "name", queueNameSchema);
}

/** Put, get, ack (one or a batch), nack and stats over `queues()`. */
function addMessageRoutes(app: Hono, queues: () => QueueService): void {
  app.post("/queue/:name/messages", jsonBody(putBodySchema), (c) => {
    const queue = name(c);
    const { payload, key } = c.req.valid("json");
    try {
      if (key === undefined) return c.json({ id: queues().put(queue, payload) }, 201);
      const put = queues().putOnce(queue, payload, key);
      return put.duplicate
        ? c.json({ id: put.id, duplicate: true }, 200)
        : c.json({ id: put.id }, 201);
    } catch (error) {
      if (error instanceof KeyConflictError) {
        throw new HTTPException(409, { message: error.message });
      }
      if (!(error instanceof QueueFullError)) throw error;
      return c.json({ error: error.message }, 429, { "Retry-After": RETRY_AFTER_SECONDS });
    }
  });

  app.get("/queue/:name/messages", async (c) => {
    const queue = name(c);
    const query = getQuerySchema.safeParse(singleQueries(c));
    if (!query.success) {
      throw new HTTPException(400, { message: _invalidField(query.error, "query") });
    }
    const { max, wait, visibility } = query.data;
    try {
      const messages = await queues().get(queue, {
        max,
        waitMs: wait,
        visibilityMs: visibility,
        signal: c.req.raw.signal,
      });
      return c.json({ messages });
    } catch (error) {
      if (!(error instanceof TooManyWaitersError)) throw error;
      return c.json({ error: error.message }, 503, { "Retry-After": RETRY_AFTER_SECONDS });
    }
  });

  app.post("/queue/:name/messages/:id/ack", (c) => {
    const queue = name(c);
    const id = validParam(c, "id", messageIdSchema);
    known(() => queues().ack(queue, id));
    return c.json({ acked: true });
  });

  app.post("/queue/:name/acks", jsonBody(acksBodySchema), (c) => {
    const queue = name(c);
    return c.json(queues().ackMany(queue, c.req.valid("json").ids));
  });

  app.post("/queue/:name/messages/:id/nack", (c) => {
    const queue = name(c);
    const id = validParam(c, "id", messageIdSchema);
    known(() => queues().nack(queue, id));
    return c.json({ nacked: true });
  });

  app.get("/queue/:name", (c) => c.json(queues().stats(name(c))));
}

/** The WebSocket of a queue: a {@linkcode QueueSocket} per connection. */
function addSocketRoute(app: Hono, queues: () => QueueService): void {
  app.get(
    "/queue/:name/ws",
    async (c, next) => {
      name(c);
      queues();
      if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
        throw new HTTPException(426, {
          message: `${c.req.path} is a WebSocket: send the GET with "Upgrade: websocket"`,
        });
      }
      await next();
    },
    upgradeWebSocket((c) => {
      const queue = name(c);
      const service = queues();
      // A client that sends batches asks for them; older clients get no hello frame.
      const batch = singleQuery(c, "batch") === "1";
      let socket: QueueSocket | null = null;
      return {
        onOpen: (_event, ws) => {
          socket = new QueueSocket(
            service,
            queue,
            {
              send: (frame) => ws.send(JSON.stringify(frame)),
              close: (code, reason) => ws.close(code, reason),
              get bufferedAmount() {
                return ws.raw?.bufferedAmount ?? 0;
              },
            },
            MAX_BODY_BYTES,
            { batch },
          );
        },
        onMessage: (event) => socket?.receive(event.data),
        onClose: () => socket?.close(),
        onError: () => socket?.close(),
      };
    }),
  );
}

/** Runs `work`, turning an unknown message into a 404. */
function known(work: () => void): void {
  try {
    work();
  } catch (error) {
    if (error instanceof UnknownMessageError) {
      throw new HTTPException(404, { message: error.message });
    }
    throw error;
  }
}
