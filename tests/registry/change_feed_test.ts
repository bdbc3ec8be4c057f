/**
 * The change stream for one slow consumer (`src/registry/change_feed.ts`) and
 * the watch route on it: the replay is read a page at a time, a live change
 * that the replay also reads is handed out once, and a watcher that lets more
 * than its bound of live changes wait is cut off instead of making the
 * registry hold them (docs/protocol.md 5.3 "Watch").
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Hono } from "hono";
import { ChangeFeed, FEED_PAGE, type FeedSource } from "../../src/registry/change_feed.ts";
import { Registry } from "../../src/registry/registry.ts";
import { registryRoutes, WATCH_QUEUE_BYTES } from "../../src/registry/routes.ts";
import { SqliteStore } from "../../src/registry/sqlite_store.ts";
import type { RegistryEvent } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";

/** A source with no history whose live changes the test sends itself. */
function liveSource(): FeedSource & { send(event: RegistryEvent): void; listeners: number } {
  const listeners = new Set<(event: RegistryEvent) => void>();
  return {
    page: (seq) => Promise.resolve({ events: [], last: seq, more: false }),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    send: (event) => listeners.forEach((l) => l(event)),
    get listeners() {
      return listeners.size;
    },
  };
}

function event(seq: number, padding = 0): RegistryEvent {
  return {
    seq,
    kind: "transition",
    record: serviceRecord("spw-00000001", { lastFailure: "x".repeat(padding) }),
    transition: {
      seq,
      id: "spw-00000001",
      incarnation: 1,
      from: "ALIVE",
      to: "ALIVE",
      at: 0,
      reason: "test",
    },
  } as RegistryEvent;
}

Deno.test("ChangeFeed hands live changes out in order and resumes from the last transition", async () => {
  const source = liveSource();
  const feed = new ChangeFeed(source, 7, 1 << 20);
  source.send(event(8));
  source.send(event(9));
  assert.equal((await feed.next())!.event.seq, 8);
  assert.equal((await feed.next())!.event.seq, 9);
  assert.equal(feed.last, 9);
  const waiting = feed.next();
  source.send(event(10));
  assert.equal((await waiting)!.json, JSON.stringify(event(10)));
  feed.close();
  assert.equal(source.listeners, 0, "a closed feed stops listening");
  assert.equal(await feed.next(), null);
});

Deno.test("ChangeFeed cuts off a consumer that lets more than its bound wait, and holds nothing after", async () => {
  const source = liveSource();
  let cuts = 0;
  const bound = JSON.stringify(event(1, 1000)).length * 3;
  const feed = new ChangeFeed(source, 0, bound, () => cuts++);
  for (let seq = 1; seq <= 3; seq++) source.send(event(seq, 1000));
  assert.equal(feed.cut, false, "at the bound, not past it");
  source.send(event(4, 1000));
  assert.equal(feed.cut, true);
  assert.equal(cuts, 1);
  assert.equal(source.listeners, 0, "a cut feed stops listening");
  source.send(event(5, 1000));
  assert.equal(await feed.next(), null, "nothing is handed out after the cut");
  assert.equal(feed.last, 0, "the consumer resumes from what it got");
  assert.equal(cuts, 1);
});

Deno.test("Registry.feed() reads the replay a page at a time and hands out a change the replay also reads once", async () => {
  const dir = await Deno.makeTempDir();
  const registry = new Registry(SqliteStore.open(join(dir, "r.db")));
  try {
    const total = FEED_PAGE + 20;
    for (let i = 0; i < total; i++) {
      await registry.put(serviceRecord(`spw-${String(i).padStart(8, "0")}`), "up");
    }
    const feed = registry.feed(0, 1 << 20);
    const seqs = [(await feed.next())!.event.seq];
    // Written while the first page is handed out: queued live, and read again by the second page.
    await registry.put(serviceRecord("spw-late0001"), "late");
    for (let i = 0; i < total; i++) seqs.push((await feed.next())!.event.seq);
    const waiting = feed.next();
    await registry.setSession("spw-late0001", "s1", true);
    const sessions = (await waiting)!.event;
    feed.close();
    assert.equal(new Set(seqs).size, total + 1, "no change twice");
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "oldest first");
    assert.deepEqual([sessions.kind, sessions.record.id], ["sessions", "spw-late0001"]);
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("GET /v1/registry/watch cuts off a watcher that does not read, and ends its stream with where to resume", async () => {
  const source = liveSource();
  const made: { feed?: ChangeFeed } = {};
  const registry = {
    feed(since: number, max: number, onCut: () => void): ChangeFeed {
      made.feed = new ChangeFeed(source, since, max, onCut);
      return made.feed;
    },
  } as unknown as Registry;
  const app = new Hono();
  app.route("/v1", registryRoutes(() => registry));
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, app.fetch);
  const conn = await Deno.connect({ port: server.addr.port, hostname: "127.0.0.1" });
  try {
    await conn.write(
      new TextEncoder().encode("GET /v1/registry/watch?since=0 HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    while (!made.feed || source.listeners === 0) await new Promise((r) => setTimeout(r, 10));
    // Far more than the socket buffers and the bound, none of it read.
    const sent = Math.ceil((64 << 20) / 65_536);
    for (let seq = 1; seq <= sent && !made.feed!.cut; seq++) {
      source.send(event(seq, 65_536));
      if (seq % 16 === 0) await new Promise((r) => setTimeout(r, 0));
    }
    assert.equal(made.feed!.cut, true, "the watcher was cut off");
    assert.ok(WATCH_QUEUE_BYTES < 64 << 20);
    // Now read: the stream ends (the last chunk of a chunked answer) short of what was sent.
    const decoder = new TextDecoder();
    let text = "";
    const buffer = new Uint8Array(1 << 16);
    const deadline = Date.now() + 10_000;
    while (!text.endsWith("\r\n0\r\n\r\n") && Date.now() < deadline) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
    assert.ok(text.startsWith("HTTP/1.1 200"), text.slice(0, 40));
    const got = text.split("\nevent: transition\n").length - 1;
    assert.ok(got < sent, `got ${got} of ${sent} events`);
    assert.ok(text.endsWith("\r\n0\r\n\r\n"), "the stream ended");
    const resume = `: cut off: the watcher fell behind; resume with since=${made.feed!.last}\n\n`;
    assert.ok(text.includes(resume), `the socket took writes again, so it was told: ${resume}`);
  } finally {
    conn.close();
    await server.shutdown();
  }
});
