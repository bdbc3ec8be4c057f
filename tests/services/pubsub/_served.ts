/**
 * A real HTTP server with the pub/sub routes on 127.0.0.1, for tests that
 * need real sockets.
 * @module
 */
import { type FabricKeys, generateFabricKeys } from "../../../src/crypto/mod.ts";
import { roleApp } from "../../api/_role_app.ts";
import {
  Broker,
  type BrokerOptions,
  PubsubClient,
  type PubsubEvent,
  pubsubRoutes,
  type PubsubSubscription,
} from "../../../src/services/pubsub/mod.ts";

export const keys = await generateFabricKeys();
export const SERVICE = "pubsub-0000001";

export interface Served {
  port: number;
  broker: Broker;
  client(withKeys?: FabricKeys): PubsubClient;
  /** Subscribes and records every event. */
  follow(patterns: string[]): Promise<{ sub: PubsubSubscription; events: PubsubEvent[] }>;
}

/** The service app of {@linkcode SERVICE} with the pub/sub routes on `current()`'s broker. */
export function pubsubApp(current: () => Broker | null): ReturnType<typeof roleApp> {
  return roleApp(SERVICE, keys, pubsubRoutes(current));
}

/** A real HTTP server with the pub/sub routes on 127.0.0.1, closed after `fn`. */
export async function withServer(options: BrokerOptions, fn: (s: Served) => Promise<void>) {
  const broker = new Broker(options);
  const app = pubsubApp(() => broker);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  const subs: PubsubSubscription[] = [];
  const target = { id: SERVICE, url: `http://127.0.0.1:${server.addr.port}` };
  const served: Served = {
    port: server.addr.port,
    broker,
    client: (withKeys = keys) => new PubsubClient(withKeys, target),
    follow: async (patterns) => {
      const events: PubsubEvent[] = [];
      const sub = await served.client().subscribe(patterns, { onEvent: (e) => events.push(e) });
      subs.push(sub);
      return { sub, events };
    },
  };
  try {
    await fn(served);
  } finally {
    await Promise.all(subs.map((s) => s.close()));
    broker.close();
    await server.shutdown();
  }
}
