/**
 * A signed WebSocket handshake that is malformed besides `Upgrade: websocket`
 * is answered 400 naming the header (426 with `Sec-WebSocket-Version: 13` for
 * another version), signed, never 500: on the queue's and the pub/sub's
 * sockets, and through a bridge's relay before it opens anything.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { type FabricKeys, verifyResponse } from "../../src/crypto/mod.ts";
import { QUEUE_ID, withQueueServer } from "../services/queue/_app.ts";
import {
  keys as pubsubKeys,
  SERVICE as PUBSUB_ID,
  withServer,
} from "../services/pubsub/_served.ts";
import { BRIDGE, bridgeRelay, CHILD } from "./_bridge.ts";
import { GOOD_HANDSHAKE, rawHandshake } from "./_raw_handshake.ts";

/** A malformed handshake, and the status and error it is answered with. */
const MALFORMED: [string, Record<string, string | undefined>, number, RegExp][] = [
  [
    "no Connection",
    { connection: undefined },
    400,
    /the "Connection" header must contain "Upgrade": send "Connection: Upgrade"/,
  ],
  ["Connection without Upgrade", { connection: "keep-alive" }, 400, /"Connection" header/],
  [
    "no key",
    { "sec-websocket-key": undefined },
    400,
    /the "Sec-WebSocket-Key" header must be the base64 of 16 random bytes: send one/,
  ],
  ["a key of 5 bytes", { "sec-websocket-key": "c2hvcnQ=" }, 400, /"Sec-WebSocket-Key"/],
  [
    "no version",
    { "sec-websocket-version": undefined },
    400,
    /the "Sec-WebSocket-Version" header is missing: send 13/,
  ],
  [
    "version 8",
    { "sec-websocket-version": "8" },
    426,
    /"Sec-WebSocket-Version" "8" is not supported: send 13/,
  ],
];

/** Sends every malformed handshake to `path` on `port` and checks its answer. */
async function assertRefused(
  port: number,
  path: string,
  keys: FabricKeys,
  target: string,
  extra: Record<string, string> = {},
): Promise<void> {
  for (const [what, change, status, message] of MALFORMED) {
    const answer = await rawHandshake(
      port,
      path,
      keys,
      target,
      { ...GOOD_HANDSHAKE, ...change },
      extra,
    );
    assert.equal(answer.status, status, what);
    const body = JSON.parse(new TextDecoder().decode(answer.body));
    assert.match(body.error, /^Invalid WebSocket handshake: /, what);
    assert.match(body.error, message, what);
    const verdict = await verifyResponse(
      { status: answer.status, headers: answer.headers, body: answer.body },
      { publicKey: keys.publicKey, fingerprint: keys.fingerprint, requestNonce: answer.nonce },
    );
    assert.ok(verdict.ok, `${what}: the answer is signed`);
    if (status === 426) {
      assert.equal(answer.headers.get("sec-websocket-version"), "13", what);
    }
  }
}

Deno.test("the queue's WebSocket answers a malformed handshake 400 (426 for another version), signed", async () => {
  await withQueueServer(async ({ keys }, url) => {
    const port = Number(new URL(url).port);
    await assertRefused(port, "/v1/queue/jobs/ws", keys, QUEUE_ID);
    const good = await rawHandshake(port, "/v1/queue/jobs/ws", keys, QUEUE_ID, {
      ...GOOD_HANDSHAKE,
      connection: "keep-alive, upgrade",
    });
    assert.equal(good.status, 101, "Connection is a list whose tokens are case-insensitive");
  });
});

Deno.test("the pub/sub's WebSocket answers a malformed handshake 400 (426 for another version), signed", async () => {
  await withServer({}, async ({ port, broker }) => {
    await assertRefused(port, "/v1/pubsub/ws?topics=a", pubsubKeys, PUBSUB_ID);
    assert.equal(broker.stats().subscribers, 0);
  });
});

Deno.test("a bridge's relay answers a malformed handshake 400 (426 for another version), signed, and opens nothing", async () => {
  let upgrades = 0;
  const hop = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    upgrades++;
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => socket.close();
    return response;
  });
  const app = new Hono();
  app.use(bridgeRelay(pubsubKeys, `http://127.0.0.1:${hop.addr.port}`));
  app.all("*", (c) => c.text("not relayed", 418));
  const bridge = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  try {
    await assertRefused(bridge.addr.port, "/v1/pubsub/ws?topics=a", pubsubKeys, CHILD, {
      "fabric-route": `${BRIDGE},${CHILD}`,
    });
    assert.equal(upgrades, 0, "nothing is opened to the next hop");
  } finally {
    await bridge.shutdown();
    await hop.shutdown();
  }
});
