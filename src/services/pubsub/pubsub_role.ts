/**
 * The pub/sub role: a broker for topics with wildcards, published to over
 * HTTP or WebSocket, followed over WebSocket.
 *
 * A broker holds no durable state, so a lost pub/sub service is replaced by a
 * fresh one (`replacement: "fresh"`). Delivery is at-most-once: messages in
 * outboxes or socket buffers when the process crashes or stops are lost, and
 * subscribers must reconnect and subscribe again (docs/services.md "## pubsub").
 * @module
 */
import type { RoleContext, RoleHandle, RoleModule } from "../../runtime/role.ts";
import { log } from "../../config/logging.ts";
import { Broker, type BrokerOptions } from "./broker.ts";
import { pubsubRoutes } from "./routes.ts";

/** Role options (`fabricd spawn --option K=V`) that tune the broker. */
const OPTION_NAMES = ["buffer", "bufferBytes", "highWaterBytes"] as const;

/**
 * Broker options from the role's options: `buffer` (messages per subscriber,
 * default 1024), `bufferBytes` (default 16 MiB), `highWaterBytes` (default 1 MiB).
 * Other options are ignored.
 * @throws {RangeError} when one of them is not a positive whole number.
 */
export function brokerOptionsOf(options: Record<string, string>): BrokerOptions {
  const result: BrokerOptions = {};
  for (const name of OPTION_NAMES) {
    const raw = options[name];
    if (raw === undefined) continue;
    const value = Number(raw);
    if (!/^\d{1,12}$/.test(raw) || value < 1) {
      throw new RangeError(
        `Invalid pubsub option ${name}="${raw}": give a whole number of 1 or more`,
      );
    }
    result[name] = value;
  }
  return result;
}

function start(ctx: RoleContext): Promise<RoleHandle> {
  const options = brokerOptionsOf(ctx.options);
  const broker = new Broker(options);
  let live: Broker | null = broker;
  const removers = ctx.metrics
    ? [
      ctx.metrics.counterFrom({
        name: "pubsub_messages_total",
        help: "Messages published since the broker started",
        collect: (set) => set({}, broker.stats().published),
      }),
      ctx.metrics.counterFrom({
        name: "pubsub_drops_total",
        help: "Messages dropped by reason (slow_subscriber: the oldest of a full outbox)",
        labelNames: ["reason"],
        collect: (set) => set({ reason: "slow_subscriber" }, broker.stats().dropped),
      }),
      ctx.metrics.gauge({
        name: "pubsub_subscribers",
        help: "Subscribers connected now",
        collect: (set) => set({}, broker.stats().subscribers),
      }),
    ]
    : [];
  const logger = log("pubsub");
  logger.info("Pub/sub broker is running", { ...options });
  let stopped = false;
  return Promise.resolve({
    routes: pubsubRoutes(() => live),
    stop: () => {
      if (stopped) return Promise.resolve();
      stopped = true;
      for (const remove of removers) remove();
      live = null;
      const stats = broker.stats();
      broker.close();
      logger.info("Pub/sub broker stopped; {subscribers} subscribers disconnected", { ...stats });
      return Promise.resolve();
    },
  });
}

/** The pub/sub role module. */
export const pubsubRole: RoleModule = {
  start,
  replacement: "fresh",
};
