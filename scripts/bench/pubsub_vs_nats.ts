/**
 * `pubsub-vs-nats`: messages per second from one publisher to four
 * subscribers of one topic, 256-byte messages, through fabricd's pub/sub
 * service against a NATS server (Debian's `nats-server`) in the same run.
 *
 * Both systems are driven the same way from this process: one publisher
 * connection (fabricd: a WebSocket publishing `{"op":"publish"}` frames; NATS:
 * the npm `nats` client) and four subscriber connections (fabricd: signed
 * WebSocket subscriptions with `onEvent`; NATS: callback subscriptions). The
 * broker runs in its own process (a `pubsub` service spawned in a local fabric
 * with the SQLite registry; `nats-server` on a free loopback port).
 *
 * The measure is messages delivered to EVERY subscriber per second: a phase of
 * `BENCH_MESSAGES` messages (default 100,000) is timed from the first publish
 * to the moment the slowest subscriber has its last message, and the rate is
 * the messages the slowest subscriber received divided by that time (so four
 * times as many deliveries happen). The publisher is windowed: it keeps at most
 * `BENCH_WINDOW` messages (default 512, under the pubsub outbox's default
 * 1024) published and not yet received by every subscriber, refilling when
 * half the window has drained; both systems are measured at the rate they
 * sustain, not at the rate their buffers fill. Messages the pub/sub broker
 * drops (drop-oldest, reported by `{"op":"dropped"}`) settle the window too
 * and are reported; they are not counted as delivered. Each system first runs
 * a warm-up phase of a tenth of the messages; `BENCH_RUNS` rounds (default 3)
 * alternate which system goes first, and the median rate of each is reported.
 *
 * A message is 256 bytes as its broker carries it: 256 bytes of payload for
 * NATS, a JSON string of 256 bytes serialized for fabricd.
 * @module
 */
import { connect, type NatsConnection } from "nats";
import { withBenchFabric } from "./_local_fabric.ts";
import {
  awaitSubscribers,
  FanoutCounter,
  type FanoutHandlers,
  type FanoutReport,
  type FanoutSystem,
  measureFanout,
} from "./_nats_fanout.ts";
import { type NatsServer, withNatsServer } from "./_nats_server.ts";
import {
  type Benchmark,
  type BenchResult,
  clockTicksPerSecond,
  envNumber,
  median,
  processCpuSeconds,
  round,
  say,
} from "./_harness.ts";
import type { FabricKeys } from "../../src/crypto/keys.ts";
import type { Target } from "../../src/client/fabric_client.ts";
import {
  PubsubClient,
  type PubsubEvent,
  type PubsubSubscription,
} from "../../src/services/pubsub/mod.ts";
import type { ServiceStatus, SpawnResult } from "../../src/types/mod.ts";

const NAME = "pubsub-vs-nats";
const SUBSCRIBERS = 4;
const MESSAGE_BYTES = 256;
const TOPIC = "bench.fanout";
const GOAL = 0.3;

/** The `pubsub-vs-nats` benchmark; see the module comment for its settings. */
export const pubsubVsNats: Benchmark = {
  name: NAME,
  description: `messages/s, 1 publisher -> ${SUBSCRIBERS} subscribers, ${MESSAGE_BYTES} B, ` +
    `pub/sub vs nats-server (goal ratio >= ${GOAL})`,
  run,
};

/** The payload of a data message, or of a readiness probe: the first byte tells. */
function payload(probe: boolean): string {
  return (probe ? "p" : "d").padEnd(MESSAGE_BYTES, "x");
}

/** How to open one system, once per round. */
interface Contender {
  name: string;
  /** The broker's process, for its CPU time. */
  pid: number;
  open(handlers: FanoutHandlers, errors: string[]): Promise<FanoutSystem>;
}

/** What one system did in one timed phase. */
interface Phase extends FanoutReport {
  rate: number;
  brokerCpuUsPerMessage: number;
  benchCpuUsPerMessage: number;
}

async function run(): Promise<BenchResult> {
  const messages = Math.max(1, Math.round(envNumber("BENCH_MESSAGES", 100_000)));
  const window = Math.max(1, Math.round(envNumber("BENCH_WINDOW", 512)));
  const rounds = Math.max(1, Math.round(envNumber("BENCH_RUNS", 3)));
  const ticks = await clockTicksPerSecond();
  // NATS first: without nats-server the benchmark stops before starting a fabric.
  return await withNatsServer((server) =>
    withBenchFabric("pubsub", 2000, async (local) => {
      const spawned = await local.client.call<SpawnResult>(local.spawner, {
        method: "POST",
        path: "/v1/spawn",
        body: { role: "pubsub" },
      }, { timeoutMs: 60_000 });
      const target = { id: spawned.id, url: spawned.endpoint };
      const status = await local.client.call<ServiceStatus>(target, {
        method: "GET",
        path: "/v1/status",
      });
      say(NAME, `pubsub ${spawned.id} (pid ${status.pid}); ${server.version} at ${server.url}`);
      const fabric = fabricContender(local.keys, target, status.pid);
      const nats = natsContender(server);
      const phases = new Map<string, Phase[]>([[fabric.name, []], [nats.name, []]]);
      for (let r = 0; r < rounds; r++) {
        for (const contender of r % 2 === 0 ? [fabric, nats] : [nats, fabric]) {
          const phase = await measure(contender, { messages, window, ticks });
          phases.get(contender.name)!.push(phase);
          say(
            NAME,
            `round ${r + 1} ${contender.name}: ${round(phase.rate)} msg/s to every subscriber ` +
              `(${phase.received.join("/")} received, ${sum(phase.dropped)} dropped in ` +
              `${round(phase.ms)} ms; CPU per message: broker ${
                round(phase.brokerCpuUsPerMessage)
              } us, bench ${round(phase.benchCpuUsPerMessage)} us)`,
          );
        }
      }
      return result(phases.get(fabric.name)!, phases.get(nats.name)!, { messages, window });
    })
  );
}

async function measure(
  contender: Contender,
  settings: { messages: number; window: number; ticks: number },
): Promise<Phase> {
  const counter = new FanoutCounter(SUBSCRIBERS);
  const errors: string[] = [];
  const system = await contender.open(counter.handlers, errors);
  try {
    await awaitSubscribers(system, counter, 10_000);
    const options = { window: settings.window, stallMs: 10_000 };
    await measureFanout(system, counter, {
      ...options,
      messages: Math.max(1, Math.round(settings.messages / 10)),
    });
    const brokerCpu = processCpuSeconds(contender.pid, settings.ticks);
    const benchCpu = processCpuSeconds(Deno.pid, settings.ticks);
    const report = await measureFanout(system, counter, {
      ...options,
      messages: settings.messages,
    });
    const perMessage = (seconds: number): number => (seconds * 1e6) / report.published;
    if (errors.length > 0) throw new Error(`${contender.name}: ${errors[0]}`);
    return {
      ...report,
      rate: Math.min(...report.received) / (report.ms / 1000),
      brokerCpuUsPerMessage: perMessage(
        processCpuSeconds(contender.pid, settings.ticks) - brokerCpu,
      ),
      benchCpuUsPerMessage: perMessage(processCpuSeconds(Deno.pid, settings.ticks) - benchCpu),
    };
  } finally {
    await system.close();
  }
}

function fabricContender(keys: FabricKeys, target: Target, pid: number): Contender {
  const client = new PubsubClient(keys, target);
  return {
    name: "fabricd",
    pid,
    open: async (handlers, errors) => {
      const onError = (event: PubsubEvent): void => {
        if (event.op === "error") errors.push(event.message);
      };
      const sockets: PubsubSubscription[] = [];
      const closeAll = async (): Promise<void> => {
        await Promise.all(sockets.map((s) => s.close()));
      };
      try {
        for (let i = 0; i < SUBSCRIBERS; i++) {
          sockets.push(
            await client.subscribe([TOPIC], {
              onEvent: (event) => {
                if (event.op === "message") {
                  handlers.message(i, (event.message as string).charCodeAt(0) === 112);
                } else if (event.op === "dropped") handlers.dropped(i, event.count);
                else onError(event);
              },
            }),
          );
        }
        const publisher = await client.subscribe([], { onEvent: onError });
        sockets.push(publisher);
        // Quoted, the string is MESSAGE_BYTES of JSON.
        const data = payload(false).slice(0, MESSAGE_BYTES - 2);
        const probe = payload(true).slice(0, MESSAGE_BYTES - 2);
        return {
          name: "fabricd",
          publish: (isProbe) => publisher.publish(TOPIC, isProbe ? probe : data),
          close: closeAll,
        };
      } catch (error) {
        await closeAll();
        throw error;
      }
    },
  };
}

function natsContender(server: NatsServer): Contender {
  return {
    name: "nats",
    pid: server.pid,
    open: async (handlers, errors) => {
      const connections: NatsConnection[] = [];
      try {
        for (let i = 0; i < SUBSCRIBERS; i++) {
          const nc = await connect({ servers: server.url, name: `bench-sub-${i}` });
          connections.push(nc);
          nc.subscribe(TOPIC, {
            callback: (error, msg) => {
              if (error) errors.push(error.message);
              else handlers.message(i, msg.data[0] === 112);
            },
          });
          await nc.flush();
        }
        const publisher = await connect({ servers: server.url, name: "bench-pub" });
        connections.push(publisher);
        const encoder = new TextEncoder();
        const data = encoder.encode(payload(false));
        const probe = encoder.encode(payload(true));
        return {
          name: "nats",
          publish: (isProbe) => publisher.publish(TOPIC, isProbe ? probe : data),
          close: () => closeNats(connections),
        };
      } catch (error) {
        await closeNats(connections);
        throw error;
      }
    },
  };
}

async function closeNats(connections: NatsConnection[]): Promise<void> {
  await Promise.all(connections.map((nc) => nc.close().catch(() => {})));
}

function result(
  fabric: Phase[],
  nats: Phase[],
  settings: { messages: number; window: number },
): BenchResult {
  const value = median(fabric.map((p) => p.rate));
  const baseline = median(nats.map((p) => p.rate));
  const ratio = value / baseline;
  say(NAME, `median: fabricd ${round(value)} msg/s, nats ${round(baseline)} msg/s`);
  return {
    name: NAME,
    value: round(value),
    baseline: round(baseline),
    ratio: round(ratio, 3),
    unit: "messages/s to every subscriber",
    goal: `ratio >= ${GOAL}`,
    goal_met: ratio >= GOAL,
    subscribers: SUBSCRIBERS,
    message_bytes: MESSAGE_BYTES,
    messages: settings.messages,
    window: settings.window,
    rounds: fabric.length,
    deliveries_per_s: round(value * SUBSCRIBERS),
    dropped: sum(fabric.flatMap((p) => p.dropped)),
    nats_dropped: sum(nats.flatMap((p) => p.dropped)),
    broker_cpu_us_per_message: round(median(fabric.map((p) => p.brokerCpuUsPerMessage))),
    nats_broker_cpu_us_per_message: round(median(nats.map((p) => p.brokerCpuUsPerMessage))),
    bench_cpu_us_per_message: round(median(fabric.map((p) => p.benchCpuUsPerMessage))),
    nats_bench_cpu_us_per_message: round(median(nats.map((p) => p.benchCpuUsPerMessage))),
  };
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
