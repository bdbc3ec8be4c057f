/**
 * The etcd store's parts that need no etcd: the window of transitions, the
 * batched lease renewals and the paged ranges, against a fake member on
 * loopback. The store itself runs against a real cluster in
 * tests/e2e/etcd_registry_test.ts.
 */
import assert from "node:assert/strict";
import { b64, EtcdClient } from "../../src/registry/_etcd_client.ts";
import { LeaseEnds, LeaseRenewer, renewalsOf } from "../../src/registry/_etcd_leases.ts";
import { rangePages } from "../../src/registry/_etcd_pages.ts";
import { TransitionWindow } from "../../src/registry/_etcd_transitions.ts";
import type { Transition } from "../../src/types/mod.ts";

function tr(id: string, seq: number): Transition {
  return { id, incarnation: 1, from: "", to: "ALIVE", reason: "test", at: seq, seq };
}

const decode = (text: string) =>
  new TextDecoder().decode(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)));

/** A fake etcd member on loopback; `handle` answers each POST by path and body. */
async function withFakeEtcd(
  handle: (path: string, body: string, port: number) => string,
  fn: (url: string, paths: string[]) => Promise<void>,
): Promise<void> {
  const paths: string[] = [];
  let port = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req): Promise<Response> => {
      const path = new URL(req.url).pathname;
      paths.push(path);
      return new Response(handle(path, await req.text(), port));
    },
  );
  port = server.addr.port;
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, paths);
  } finally {
    await server.shutdown();
  }
}

Deno.test("TransitionWindow.since() answers from memory after its floor, null before it", () => {
  const window = new TransitionWindow(3);
  window.reset(10);
  for (const seq of [11, 13, 17]) window.add(tr(`svc-${seq}`, seq));
  assert.deepEqual(window.since(10, 100)?.map((t) => t.seq), [11, 13, 17]);
  assert.deepEqual(window.since(12, 1)?.map((t) => t.seq), [13]);
  assert.deepEqual(window.since(17, 100), []);
  assert.equal(window.since(9, 100), null);
  // A fourth drops the oldest and raises the floor to it.
  window.add(tr("svc-20", 20));
  assert.equal(window.since(10, 100), null);
  assert.deepEqual(window.since(11, 100)?.map((t) => t.seq), [13, 17, 20]);
  window.forget("svc-17");
  assert.deepEqual(window.since(11, 100)?.map((t) => t.seq), [13, 20]);
  window.add(tr("svc-old", 5));
  assert.deepEqual(window.since(11, 100)?.map((t) => t.seq), [13, 20]);
});

Deno.test("TransitionWindow.caughtUp() waits for the watch, and gives up after its time", async () => {
  const window = new TransitionWindow(10);
  window.reset(5);
  assert.equal(await window.caughtUp(5, 10), true);
  const waiting = window.caughtUp(8, 5000);
  window.advance(7);
  window.advance(8);
  assert.equal(await waiting, true);
  assert.equal(await window.caughtUp(9, 20), false);
  window.close();
});

Deno.test("renewalsOf() reads each answered lease's TTL, 0 for an expired one", () => {
  const text = [
    JSON.stringify({ result: { header: {}, ID: "1", TTL: "6" } }),
    JSON.stringify({ result: { header: {}, ID: "2" } }),
    "",
    JSON.stringify({ error: { grpc_code: 14, message: "etcdserver: no leader" } }),
    '{"result":{"ID":"3","TT',
  ].join("\n");
  assert.deepEqual([...renewalsOf(text)], [["1", 6], ["2", 0]]);
});

Deno.test("LeaseRenewer.renew() sends renewals in batches to the leader and sends again what a cut body lost", async () => {
  const known = new Set(Array.from({ length: 450 }, (_, i) => String(1000 + i)));
  let renewed = 0;
  let bodies = 0;
  await withFakeEtcd((path, body, port) => {
    if (path === "/v3/maintenance/status") return JSON.stringify({ leader: "42" });
    if (path === "/v3/cluster/member/list") {
      return JSON.stringify({
        members: [
          { ID: "7", clientURLs: ["http://127.0.0.1:1"] },
          { ID: "42", clientURLs: [`http://127.0.0.1:${port}`] },
        ],
      });
    }
    bodies++;
    // Like etcd's HTTP/1.1 gateway: only the start of a long body is read.
    const lines = body.split("\n").slice(0, 50);
    return lines.map((line) => {
      const id = (JSON.parse(line) as { ID: string }).ID;
      renewed++;
      return JSON.stringify({ result: { ID: id, ...(known.has(id) ? { TTL: "6" } : {}) } });
    }).join("\n");
  }, async (url, paths) => {
    // Two endpoints, the leader's first; the other (a dead port) would fail every renewal.
    const renewer = new LeaseRenewer(new EtcdClient([url, url.replace(/:\d+$/, ":1")]));
    const ids = [...known, "999"];
    const ttls = await renewer.renew(ids);
    assert.equal(ttls.size, ids.length);
    assert.equal(ttls.get("1000"), 6);
    assert.equal(ttls.get("999"), 0);
    assert.equal(renewed, ids.length);
    assert.ok(bodies >= 10 && bodies <= 12, `${bodies} requests for ${ids.length} renewals`);
    assert.equal(paths.filter((p) => p === "/v3/maintenance/status").length, 1);
  });
});

Deno.test("rangePages() reads a prefix in key order at the first page's revision", async () => {
  const keys = Array.from({ length: 7 }, (_, i) => `/p/svc/${i}`);
  const asked: { key: string; revision?: string; limit: string }[] = [];
  await withFakeEtcd((_path, body) => {
    const request = JSON.parse(body) as { key: string; revision?: string; limit: string };
    asked.push(request);
    const from = decode(request.key);
    const rest = keys.filter((k) => k >= from);
    const page = rest.slice(0, Number(request.limit));
    return JSON.stringify({
      header: { revision: "99" },
      kvs: page.map((k) => ({ key: b64(k), value: b64("v"), mod_revision: "3" })),
      more: rest.length > page.length,
    });
  }, async (url) => {
    const seen: string[] = [];
    for await (const page of rangePages(new EtcdClient([url]), "/p/svc/", { pageSize: 3 })) {
      assert.equal(page.revision, 99);
      seen.push(...page.kvs.map((kv) => kv.key));
    }
    assert.deepEqual(seen, keys);
    assert.equal(asked.length, 3);
    assert.equal(asked[0]!.revision, undefined);
    assert.deepEqual(asked.slice(1).map((a) => a.revision), ["99", "99"]);
    assert.equal(decode(asked[1]!.key), "/p/svc/2\0");
  });
});

Deno.test("LeaseEnds.add() records every end, at most 8 at a time", async () => {
  let running = 0;
  let most = 0;
  const recorded: string[] = [];
  const ends = new LeaseEnds(async (id, incarnation) => {
    running++;
    most = Math.max(most, running);
    await new Promise((resolve) => setTimeout(resolve, 2));
    recorded.push(`${id}/${incarnation}`);
    running--;
  });
  for (let i = 0; i < 100; i++) ends.add(`svc-${i}`, 1);
  for (let waited = 0; recorded.length < 100 && waited < 5000; waited += 20) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(recorded.length, 100);
  assert.equal(new Set(recorded).size, 100);
  assert.equal(most, 8);
});
