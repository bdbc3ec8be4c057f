/**
 * The pub/sub role (`fabricd --role pubsub`): topics with NATS-style
 * wildcards, publish over signed HTTP or WebSocket, subscribe over a signed
 * WebSocket handshake, a bounded drop-oldest outbox per subscriber.
 *
 * @example
 * ```ts
 * import { PubsubClient } from "./src/services/pubsub/mod.ts";
 * import { generateFabricKeys } from "./src/crypto/mod.ts";
 *
 * const keys = await generateFabricKeys();
 * const pubsub = new PubsubClient(keys, { id: "pubsub-1", url: "http://127.0.0.1:7000" });
 * const subscription = await pubsub.subscribe(["tasks.*.done"]);
 * await pubsub.publish("tasks.agt-1.done", { ok: true });
 * for await (const event of subscription) {
 *   if (event.op === "message") console.log(event.topic, event.seq, event.message);
 *   break;
 * }
 * await subscription.close();
 * ```
 * @module
 */
export { brokerOptionsOf, pubsubRole } from "./pubsub_role.ts";
export {
  Broker,
  type BrokerOptions,
  MAX_MESSAGE_BYTES,
  MessageTooLargeError,
  Subscriber,
  type SubscriberOptions,
  type SubscriberSink,
} from "./broker.ts";
export { pubsubRoutes } from "./routes.ts";
export {
  assertTopic,
  compilePattern,
  isValidPattern,
  isValidTopic,
  MAX_TOPIC_LENGTH,
  TopicError,
  type TopicMatcher,
} from "../../types/pubsub_topics.ts";
export type {
  BatchFrame,
  BrokerStats,
  ClientFrame,
  PublishResult,
  ServerFrame,
} from "../../types/pubsub_frames.ts";
export {
  PubsubClient,
  type PubsubClientOptions,
  type PubsubEvent,
  PubsubSubscription,
  type SubscribeOptions,
} from "../../client/pubsub_client.ts";
