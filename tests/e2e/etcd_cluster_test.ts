/**
 * The etcd test cluster itself (scripts/etcd-testcluster, tests/e2e/_etcd.ts): three healthy
 * members with a leader, replication, leader failover, a member rejoining, a paused member,
 * idempotent up and a clean down; and the v3 JSON API shapes the helpers rely on. Needs root
 * and Debian's etcd-server; skips with a message otherwise, and fails instead when
 * FABRIC_E2E=require.
 */
import assert from "node:assert/strict";
import { eventually } from "../_eventually.ts";
import { run } from "./_testnet.ts";
import { skipPolicy } from "./_prereq.ts";
import {
  b64,
  ETCD_CLIENT_URL,
  ETCD_MEMBERS,
  ETCD_SCRIPT,
  ETCD_STATE_DIR,
  etcdAvailable,
  etcdCall,
  etcdCluster,
  etcdDown,
  etcdGet,
  etcdGetKv,
  type EtcdHeader,
  etcdHealthy,
  etcdKill,
  etcdLeader,
  type EtcdMember,
  etcdPause,
  etcdPut,
  etcdPutAnywhere,
  etcdResume,
  etcdStart,
  etcdStatus,
  etcdUp,
  etcdWaitLeader,
  unb64,
  withEtcd,
} from "./_etcd.ts";

const { skip, assertReady } = skipPolicy(await etcdAvailable(), "the etcd test cluster");

const ALL_URLS = ETCD_MEMBERS.map((m) => ETCD_CLIENT_URL[m]);

/** Any running etcd of the test cluster (matched like the script does: by its command line). */
async function clusterProcesses(): Promise<string[]> {
  const r = await run("pgrep", [
    "-af",
    `^/usr/bin/etcd --name m[0-9] --data-dir ${ETCD_STATE_DIR}/`,
  ]);
  return r.stdout.split("\n").filter((l) => l.trim() !== "");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

function followerOf(leader: EtcdMember): EtcdMember[] {
  return ETCD_MEMBERS.filter((m) => m !== leader);
}

Deno.test({
  name: "etcd-testcluster exits 64 with its usage when the command line is wrong",
  async fn() {
    for (
      const args of [[], ["bogus"], ["kill"], ["kill", "m9"], ["up", "extra"], [
        "pause",
        "m1",
        "m2",
      ]]
    ) {
      const r = await etcdCluster(args);
      assert.equal(r.code, 64, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /usage: scripts\/etcd-testcluster/);
    }
    const help = await etcdCluster(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /23791/);
  },
});

Deno.test({
  name: "etcd-testcluster exits 69 naming the etcd-server package when etcd is missing",
  ignore: skip,
  async fn() {
    assertReady();
    // Hide /usr/bin/etcd behind an empty, non-executable file, in a private mount namespace.
    const empty = await Deno.makeTempFile({ prefix: "not-etcd-" });
    try {
      const r = await run("unshare", [
        "-m",
        "bash",
        "-c",
        'mount --bind "$1" /usr/bin/etcd || exit 99; exec "$2" up',
        "bash",
        empty,
        ETCD_SCRIPT,
      ]);
      if (r.code === 99) {
        console.log(`cannot hide /usr/bin/etcd here (${r.stderr.trim()}); not checked`);
        return;
      }
      assert.equal(r.code, 69, r.stderr);
      assert.match(r.stderr, /apt-get install -y etcd-server/);
      assert.deepEqual(await clusterProcesses(), []);
    } finally {
      await Deno.remove(empty);
    }
  },
});

Deno.test({
  name: "etcd-testcluster gives three healthy members and one leader when up",
  ignore: skip,
  async fn() {
    assertReady();
    await withEtcd(async (urls) => {
      assert.deepEqual(urls, ALL_URLS);
      for (const url of urls) assert.ok(await etcdHealthy(url), `${url}/health`);

      const status = await etcdStatus();
      assert.ok(status.ok, JSON.stringify(status));
      assert.deepEqual(status.members.map((m) => [m.name, m.state, m.healthy]), [
        ["m1", "running", true],
        ["m2", "running", true],
        ["m3", "running", true],
      ]);
      assert.equal(status.members.filter((m) => m.role === "leader").length, 1);

      const leader = await etcdLeader();
      assert.equal(leader.url, ETCD_CLIENT_URL[leader.name]);
      assert.equal(status.members.find((m) => m.role === "leader")?.name, leader.name);

      // Every member names the same leader, and it is the one that says it leads.
      type Status = { header: EtcdHeader; leader: string };
      const statuses = await Promise.all(
        urls.map((u) => etcdCall<Status>(u, "/v3/maintenance/status", {})),
      );
      const leaderId = statuses[urls.indexOf(leader.url)]?.header.member_id;
      assert.ok(leaderId);
      for (const s of statuses) assert.equal(s.leader, leaderId);
      assert.equal(new Set(statuses.map((s) => s.header.member_id)).size, 3);
      assert.equal(new Set(statuses.map((s) => s.header.cluster_id)).size, 1);
    });
  },
});

Deno.test({
  name: "etcd-testcluster replicates a key when it is written on one member and read on another",
  ignore: skip,
  async fn() {
    assertReady();
    await withEtcd(async () => {
      const rev = await etcdPut(ETCD_CLIENT_URL.m1, "fabricd/test/replicated", "héllo ✓");
      assert.ok(rev > 1);
      for (const m of ["m2", "m3"] as const) {
        // Linearizable read: whatever m1 acknowledged is visible through any member.
        const kv = await etcdGetKv(ETCD_CLIENT_URL[m], "fabricd/test/replicated");
        assert.equal(unb64(kv?.value ?? ""), "héllo ✓");
        assert.equal(kv?.mod_revision, String(rev));
      }
      assert.equal(await etcdGet(ETCD_CLIENT_URL.m3, "fabricd/test/absent"), undefined);
    });
  },
});

Deno.test({
  name:
    "etcd-testcluster elects a new leader within 5 s and keeps taking writes when the leader is killed",
  ignore: skip,
  async fn() {
    assertReady();
    await withEtcd(async (urls) => {
      await etcdPut(ETCD_CLIENT_URL.m1, "fabricd/test/before", "1");
      const old = await etcdLeader();
      const killedAt = Date.now();
      await etcdKill(old.name);

      const fresh = await etcdWaitLeader({ exclude: [old.name], timeoutMs: 5000 });
      const electionMs = Date.now() - killedAt;
      console.log(`killed leader ${old.name}; ${fresh.name} leads after ${electionMs} ms`);
      assert.notEqual(fresh.name, old.name);
      assert.ok(electionMs < 5000, `election took ${electionMs} ms`);

      // A client that only knows the endpoint list: the dead member is tried and skipped.
      const took = await etcdPutAnywhere(urls, "fabricd/test/after", "2", 5000);
      assert.notEqual(took, old.url);
      for (const m of followerOf(old.name)) {
        assert.equal(await etcdGet(ETCD_CLIENT_URL[m], "fabricd/test/before"), "1");
        assert.equal(await etcdGet(ETCD_CLIENT_URL[m], "fabricd/test/after"), "2");
      }
      const status = await etcdStatus();
      assert.equal(status.ok, false);
      assert.equal(status.members.find((m) => m.name === old.name)?.state, "stopped");
    });
  },
});

Deno.test({
  name:
    "etcd-testcluster rejoins a killed member with the writes it missed when it is started again",
  ignore: skip,
  async fn() {
    assertReady();
    await withEtcd(async (urls) => {
      const old = await etcdLeader();
      await etcdKill(old.name);
      assert.ok(await exists(`${ETCD_STATE_DIR}/${old.name}/member`), "data dir kept");
      await etcdPutAnywhere(urls, "fabricd/test/missed", "while down", 5000);

      await etcdStart(old.name);
      const status = await etcdStatus();
      assert.ok(status.ok, JSON.stringify(status));
      assert.ok(status.members.every((m) => m.state === "running" && m.healthy));
      assert.equal(status.members.filter((m) => m.role === "leader").length, 1);
      // Its own copy (a serializable read does not ask the leader) catches up.
      await eventually(
        async () =>
          (await etcdGet(old.url, "fabricd/test/missed", { serializable: true })) ===
            "while down",
        { timeoutMs: 5000, what: `${old.name} catching up on the write it missed` },
      );
      // And it takes writes again.
      await etcdPut(old.url, "fabricd/test/back", "yes");
      assert.equal(await etcdGet(urls[0] ?? "", "fabricd/test/back"), "yes");
    });
  },
});

Deno.test({
  name: "etcd-testcluster keeps taking writes through the others when a follower is paused",
  ignore: skip,
  async fn() {
    assertReady();
    await withEtcd(async () => {
      const leader = await etcdLeader();
      const [paused, other] = followerOf(leader.name);
      assert.ok(paused && other);
      await etcdPause(paused);
      try {
        const status = await etcdStatus();
        assert.equal(status.members.find((m) => m.name === paused)?.state, "paused");

        // The paused member does not answer at all, like one behind a partition.
        await assert.rejects(
          etcdPut(ETCD_CLIENT_URL[paused], "fabricd/test/nope", "x", { timeoutMs: 500 }),
        );
        await etcdPut(leader.url, "fabricd/test/p1", "via leader", { timeoutMs: 2000 });
        await etcdPut(ETCD_CLIENT_URL[other], "fabricd/test/p2", "via follower", {
          timeoutMs: 2000,
        });
        assert.equal(await etcdGet(leader.url, "fabricd/test/p2"), "via follower");
        assert.equal(await etcdGet(ETCD_CLIENT_URL[other], "fabricd/test/p1"), "via leader");
      } finally {
        await etcdResume(paused);
      }
      assert.ok((await etcdStatus()).ok);
      await eventually(
        async () =>
          (await etcdGet(ETCD_CLIENT_URL[paused], "fabricd/test/p2", { serializable: true })) ===
            "via follower",
        { timeoutMs: 5000, what: `${paused} catching up after the resume` },
      );
    });
  },
});

Deno.test({
  name: "etcd-testcluster keeps the running cluster when up runs twice",
  ignore: skip,
  async fn() {
    assertReady();
    await withEtcd(async (urls) => {
      const pids = (await etcdStatus()).members.map((m) => m.pid);
      assert.ok(pids.every((p) => p !== null && p > 0), JSON.stringify(pids));
      await etcdPut(ETCD_CLIENT_URL.m2, "fabricd/test/kept", "still here");

      assert.deepEqual(await etcdUp(), urls);
      assert.deepEqual((await etcdStatus()).members.map((m) => m.pid), pids);
      assert.equal(await etcdGet(ETCD_CLIENT_URL.m3, "fabricd/test/kept"), "still here");
      const pidFile = (await Deno.readTextFile(`${ETCD_STATE_DIR}/m1.pid`)).trim();
      assert.equal(Number(pidFile), pids[0]);
    });
  },
});

Deno.test({
  name: "etcd-testcluster leaves no etcd process and no data dir when down",
  ignore: skip,
  async fn() {
    assertReady();
    try {
      await etcdUp();
      assert.equal((await clusterProcesses()).length, 3);
      // One member paused: down must still stop it (SIGTERM alone waits for SIGCONT).
      await etcdPause("m2");
      await etcdDown();
      assert.deepEqual(await clusterProcesses(), []);
      for (const m of ETCD_MEMBERS) {
        assert.equal(await exists(`${ETCD_STATE_DIR}/${m}`), false, `${m} data dir`);
        assert.equal(await exists(`${ETCD_STATE_DIR}/${m}.pid`), false, `${m} pid file`);
        assert.equal(await etcdHealthy(ETCD_CLIENT_URL[m], 300), false);
      }
      // Idempotent: nothing runs, still exit 0.
      const again = await etcdCluster(["down"]);
      assert.equal(again.code, 0, again.stderr);
      assert.notEqual((await etcdCluster(["status"])).code, 0);
    } finally {
      await etcdDown();
    }
  },
});

Deno.test({
  name: "etcd-testcluster serves the v3 JSON API (txn, lease, watch) when up",
  ignore: skip,
  async fn(t) {
    assertReady();
    await withEtcd(async ([u1 = "", u2 = "", u3 = ""]) => {
      await t.step("txn compare on mod_revision swaps only when the revision matches", async () => {
        const key = b64("fabricd/test/cas");
        const rev = await etcdPut(u1, "fabricd/test/cas", "v1");
        type Txn = {
          header: EtcdHeader;
          succeeded?: boolean;
          responses?: { response_range?: { kvs?: { value?: string }[] } }[];
        };
        const cas = (modRevision: number, value: string) =>
          etcdCall<Txn>(u2, "/v3/kv/txn", {
            compare: [{
              key,
              target: "MOD",
              result: "EQUAL",
              mod_revision: String(modRevision),
            }],
            success: [{ request_put: { key, value: b64(value) } }],
            failure: [{ request_range: { key } }],
          });
        const won = await cas(rev, "v2");
        assert.equal(won.succeeded, true);
        // A failed compare: "succeeded" is left out (false), the failure ops ran.
        const lost = await cas(rev, "v3");
        assert.equal(lost.succeeded, undefined);
        const seen = lost.responses?.[0]?.response_range?.kvs?.[0]?.value;
        assert.equal(unb64(seen ?? ""), "v2");
        assert.equal(await etcdGet(u3, "fabricd/test/cas"), "v2");
      });

      await t.step("a lease is granted, kept alive, attached to a key and revoked", async () => {
        // "TTL" must be spelled so: {"ttl":30} is ignored and etcd grants its minimum (2 s).
        const grant = await etcdCall<{ ID: string; TTL: string }>(u1, "/v3/lease/grant", {
          TTL: 30,
        });
        assert.match(grant.ID, /^[0-9]+$/);
        assert.equal(grant.TTL, "30");
        await etcdPut(u2, "fabricd/test/leased", "x", { lease: grant.ID });
        assert.equal((await etcdGetKv(u3, "fabricd/test/leased"))?.lease, grant.ID);

        // keepalive is a stream: one JSON object in, one {"result": ...} line out.
        const res = await fetch(`${u3}/v3/lease/keepalive`, {
          method: "POST",
          body: JSON.stringify({ ID: grant.ID }),
          signal: AbortSignal.timeout(2000),
        });
        const lines = (await res.text()).split("\n").filter((l) => l !== "");
        assert.equal(lines.length, 1);
        const ka = JSON.parse(lines[0] ?? "") as { result: { ID: string; TTL: string } };
        assert.equal(ka.result.ID, grant.ID);
        assert.equal(ka.result.TTL, "30");

        const ttl = await etcdCall<{ TTL: string; grantedTTL: string; keys?: string[] }>(
          u1,
          "/v3/lease/timetolive",
          { ID: grant.ID, keys: true },
        );
        assert.equal(ttl.grantedTTL, "30");
        assert.deepEqual(ttl.keys?.map(unb64), ["fabricd/test/leased"]);

        await etcdCall(u2, "/v3/lease/revoke", { ID: grant.ID });
        assert.equal(await etcdGet(u1, "fabricd/test/leased"), undefined);
        const gone = await etcdCall<{ TTL: string }>(u1, "/v3/lease/timetolive", {
          ID: grant.ID,
        });
        assert.equal(gone.TTL, "-1");
      });

      await t.step('a watch streams newline-delimited {"result"} objects', async () => {
        const ctl = new AbortController();
        const res = await fetch(`${u3}/v3/watch`, {
          method: "POST",
          body: JSON.stringify({
            create_request: { key: b64("fabricd/w/"), range_end: b64("fabricd/w0"), prev_kv: true },
          }),
          signal: ctl.signal,
        });
        assert.equal(res.status, 200);
        const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
        type WatchResult = {
          result: {
            header: EtcdHeader;
            created?: boolean;
            events?: { type?: "DELETE"; kv: { key: string; value?: string } }[];
          };
        };
        const results: WatchResult[] = [];
        let buf = "";
        const next = async (): Promise<WatchResult> => {
          for (;;) {
            const nl = buf.indexOf("\n");
            if (nl >= 0) {
              const line = buf.slice(0, nl);
              buf = buf.slice(nl + 1);
              if (line.trim() !== "") return JSON.parse(line) as WatchResult;
              continue;
            }
            const { value, done } = await reader.read();
            if (done) throw new Error("watch stream ended");
            buf += value;
          }
        };
        const timer = setTimeout(() => ctl.abort(), 5000);
        try {
          results.push(await next());
          assert.equal(results[0]?.result.created, true);
          await etcdPut(u1, "fabricd/w/a", "1");
          await etcdCall(u2, "/v3/kv/deleterange", { key: b64("fabricd/w/a") });
          results.push(await next(), await next());
          const [put, del] = [results[1]?.result.events?.[0], results[2]?.result.events?.[0]];
          assert.equal(put?.type, undefined); // PUT is the zero value, left out
          assert.equal(unb64(put?.kv.key ?? ""), "fabricd/w/a");
          assert.equal(unb64(put?.kv.value ?? ""), "1");
          assert.equal(del?.type, "DELETE");
        } finally {
          clearTimeout(timer);
          await reader.cancel().catch(() => {});
        }
      });
    });
  },
});
