/**
 * The pub/sub role's HTTP routes, mounted under `/v1`. Like every management
 * route they are signed; the WebSocket route verifies the signed handshake
 * request before it upgrades (docs/services.md "## pubsub").
 * @module
 */
import { Hono } from "hono";
import { upgradeWebSocket } from "../../api/websocket.ts";
import { HTTPException } from "hono/http-exception";
import * as z from "zod";
import { jsonBody } from "../../api/validate.ts";
import { queryList, singleQuery } from "../../api/query.ts";
import { handleClientFrame } from "./frames.ts";
import { type Broker, MessageTooLargeError, type Subscriber } from "./broker.ts";
import { compilePattern, isValidTopic, MAX_TOPIC_LENGTH } from "../../types/pubsub_topics.ts";
import type { HelloFrame } from "../../types/pubsub_frames.ts";

const publishSchema = z.strictObject({
  topic: z.string().refine(
    isValidTopic,
    `must be 1-${MAX_TOPIC_LENGTH} characters of dot-separated tokens made of letters, ` +
      "digits, '_' and '-', without wildcards",
  ),
  message: z.json(),
});

/**
 * Pub/sub routes over the broker that `current` returns; it returns null while
 * the role is not running, and the routes answer 503 then.
 */
export function pubsubRoutes(current: () => Broker | null): Hono {
  const app = new Hono();
  const broker = (): Broker => {
    const b = current();
    if (!b) throw new HTTPException(503, { message: "Pub/sub is not running: retry in a moment" });
    return b;
  };
  app.get("/pubsub", (c) => c.json(broker().stats()));
  app.post("/pubsub/publish", jsonBody(publishSchema), (c) => {
    const { topic, message } = c.req.valid("json");
    try {
      return c.json(broker().publish(topic, message));
    } catch (error) {
      if (error instanceof MessageTooLargeError) {
        throw new HTTPException(413, { message: error.message });
      }
      throw error;
    }
  });
  app.get(
    "/pubsub/ws",
    upgradeWebSocket((c) => {
      const b = broker();
      const patterns = patternsOf(c.req.queries("topics") ?? [], b.maxPatterns);
      const batch = flagOf("batch", singleQuery(c, "batch"));
      const hello = flagOf("hello", singleQuery(c, "hello"));
      let subscriber: Subscriber | null = null;
      return {
        onOpen: (_event, ws) => {
          try {
            subscriber = b.subscribe(ws.raw!, patterns, { batch });
            // Asked for: a client that sees no hello (an older service) sends no batch.
            if (hello) subscriber.notice(JSON.stringify(HELLO));
          } catch (error) {
            ws.close(1013, `${error instanceof Error ? error.message : error}`.slice(0, 120));
          }
        },
        onMessage: (event) => {
          if (subscriber) handleClientFrame(b, subscriber, event.data);
        },
        onClose: () => subscriber?.close(),
        onError: () => subscriber?.close(),
      };
    }),
    () => {
      throw new HTTPException(426, {
        message: "GET /v1/pubsub/ws is a WebSocket: send a signed WebSocket handshake",
      });
    },
  );
  return app;
}

/** The greeting of `?hello=1`: this service takes client `batch` frames. */
const HELLO: HelloFrame = { op: "hello", features: ["batch"] };

/**
 * Whether `?NAME=1` (`batch`, `hello`) is set; `0` or no parameter is not.
 * @throws {HTTPException} 400 for any other value.
 */
function flagOf(name: string, value: string | undefined): boolean {
  if (value === undefined || value === "0") return false;
  if (value === "1") return true;
  throw new HTTPException(400, { message: `Invalid query "${name}": give 1 or 0, got "${value}"` });
}

/**
 * The patterns of `?topics=a.*,b.>` (the parameter may repeat).
 * @throws {HTTPException} 400 for an empty item, or naming the first invalid pattern.
 */
function patternsOf(values: string[], max: number): string[] {
  const patterns = [
    ...new Set(values.flatMap((v) => queryList("topics", v)).map((p) => p.trim())),
  ];
  if (patterns.length > max) {
    throw new HTTPException(400, {
      message: `Invalid query "topics": at most ${max} patterns, got ${patterns.length}`,
    });
  }
  for (const pattern of patterns) {
    try {
      compilePattern(pattern);
    } catch (error) {
      throw new HTTPException(400, {
        message: `Invalid query "topics": ${(error as Error).message}`,
      });
    }
  }
  return patterns;
}
