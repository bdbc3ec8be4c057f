import type { Hono } from "hono";
import {
  type FabricKeys,
  generateFabricKeys,
  signRequest,
  verifyResponse,
} from "../../../src/crypto/mod.ts";
import { QueueService } from "../../../src/services/queue/queue.ts";
import { QueueStore } from "../../../src/services/queue/queue_store.ts";
import { queueRoutes } from "../../../src/services/queue/routes.ts";
import { roleApp } from "../../api/_role_app.ts";

/** The queue service's ID in these tests. */
export const QUEUE_ID = "que-00000001";

/** A signed answer as a test sees it. */
export interface Answer {
  status: number;
  json: Record<string, unknown>;
  headers: Headers;
  verified: boolean;
}

/** The management app of a queue service on an in-memory store, as the runtime builds it. */
export interface QueueApp {
  app: Hono;
  keys: FabricKeys;
  queues: QueueService;
  /** Sends a signed request through `app.request()` and verifies the signed answer. */
  request(method: string, path: string, body?: unknown): Promise<Answer>;
  close(): void;
}

/** Builds a {@linkcode QueueApp}; `running: false` leaves the role not started. */
export async function queueApp(
  options: { capacity?: number; maxWaiters?: number; running?: boolean } = {},
): Promise<QueueApp> {
  const keys = await generateFabricKeys();
  const queues = new QueueService(
    QueueStore.open(":memory:", options.capacity ? { capacity: options.capacity } : {}),
    options.maxWaiters ? { maxWaiters: options.maxWaiters } : {},
  );
  const running = options.running ?? true;
  const app = roleApp(QUEUE_ID, keys, queueRoutes(() => running ? queues : null));
  const request = async (method: string, path: string, body?: unknown): Promise<Answer> => {
    const url = new URL(path, "http://fabric.test");
    const bytes = body === undefined
      ? new Uint8Array()
      : new TextEncoder().encode(typeof body === "string" ? body : JSON.stringify(body));
    const headers = new Headers(body === undefined ? {} : { "content-type": "application/json" });
    const signed = await signRequest({ method, url, headers, body: bytes }, keys, {
      target: QUEUE_ID,
    });
    const answer = await app.request(url, {
      method,
      headers: signed.headers,
      ...(bytes.length > 0 ? { body: bytes } : {}),
    });
    const raw = new Uint8Array(await answer.arrayBuffer());
    const verdict = await verifyResponse(
      { status: answer.status, headers: answer.headers, body: raw },
      { publicKey: keys.publicKey, fingerprint: keys.fingerprint, requestNonce: signed.nonce },
    );
    const text = new TextDecoder().decode(raw);
    return {
      status: answer.status,
      json: text ? JSON.parse(text) : {},
      headers: answer.headers,
      verified: verdict.ok,
    };
  };
  return { app, keys, queues, request, close: () => queues.close() };
}

/** A queue app served on 127.0.0.1:0 for `fn`; the server and store are gone afterwards. */
export async function withQueueServer(
  fn: (q: QueueApp, url: string) => Promise<void>,
  options: { capacity?: number } = {},
): Promise<void> {
  const q = await queueApp(options);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, q.app.fetch);
  try {
    await fn(q, `http://127.0.0.1:${server.addr.port}`);
  } finally {
    q.close();
    await server.shutdown();
  }
}
