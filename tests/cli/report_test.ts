import assert from "node:assert/strict";
import { join } from "node:path";
import { EXIT_CANNOT_CREATE } from "../../src/cli/report.ts";
import { aliveSince } from "../../src/ui/report_data.ts";
import { reportHtml, type ReportService } from "../../src/ui/report_html.ts";
import type { ServiceState, Transition } from "../../src/types/mod.ts";
import { EXIT } from "../../src/types/mod.ts";
import { runFabricd, withLocalFabric, withTempDir } from "../e2e/_fabric.ts";
import { initFabric } from "../../src/cli/init.ts";
import { eventually } from "../_eventually.ts";
import { putTasks, queueCounts, spawnRole } from "../e2e/_ui.ts";
import { serviceRecord } from "../_fixtures.ts";

const T0 = Date.UTC(2025, 0, 2, 12, 0, 0);

function history(id: string, steps: [ServiceState, number, number?][]): Transition[] {
  let from: ServiceState | "" = "";
  return steps.map(([to, seconds, incarnation], i) => {
    const t = {
      seq: i + 1,
      id,
      incarnation: incarnation ?? 1,
      from,
      to,
      reason: `step ${i}`,
      at: T0 + seconds * 1000,
    };
    from = to;
    return t;
  });
}

function services(): ReportService[] {
  const reg = serviceRecord("reg-00000001", { role: "registry", parent: "", started: T0 });
  const spw = serviceRecord("spw-00000002", { role: "spawner", parent: "", started: T0 + 1000 });
  const agt = serviceRecord("agt-00000003", {
    role: "agent",
    parent: "spw-00000002",
    started: T0 + 5000,
    incarnation: 2,
  });
  return [
    {
      record: agt,
      transitions: history(agt.id, [["LAUNCHING", 5], ["ALIVE", 6], ["DEAD", 20], [
        "RESTARTING",
        21,
      ], ["ALIVE", 23, 2]]),
      pilot: { manager: "plm-00000004", state: "RUNNING", reason: "" },
    },
    { record: reg, transitions: history(reg.id, [["ALIVE", 0]]) },
    {
      record: spw,
      transitions: history(spw.id, [["LAUNCHING", 1], ["ALIVE", 2], ["STOPPED", 50]]),
    },
  ];
}

Deno.test("reportHtml() draws one timeline row per service with every state it went through", () => {
  const html = reportHtml({
    generatedAt: T0 + 60_000,
    services: services(),
    finished: [],
    notes: [],
  });
  const rows = [...html.matchAll(/<g class="row" data-id="([^"]+)" data-role="([^"]+)"/g)];
  assert.deepEqual(rows.map((m) => m[1]), ["reg-00000001", "spw-00000002", "agt-00000003"]);
  const row = (id: string): string => html.slice(html.indexOf(`data-id="${id}"`)).split("</g>")[0]!;
  const states = (id: string): string[] =>
    [...row(id).matchAll(/data-state="([A-Z]+)"/g)].map((m) => m[1]!);
  assert.deepEqual(states("agt-00000003"), ["LAUNCHING", "ALIVE", "DEAD", "RESTARTING", "ALIVE"]);
  assert.deepEqual(states("spw-00000002"), ["LAUNCHING", "ALIVE", "STOPPED"]);
  assert.deepEqual(states("reg-00000001"), ["ALIVE"]);
  assert.match(row("agt-00000003"), /data-pilot="RUNNING"/);
  assert.match(html, /no agent answered: no task data/);
});

Deno.test("reportHtml() writes a self-contained file: no script, no external reference, text escaped", () => {
  const list = services();
  list[1]!.transitions[0]!.reason = `<script src="https://evil.example/x.js"></script>`;
  const html = reportHtml({
    generatedAt: T0 + 60_000,
    services: list,
    finished: [],
    notes: ["a <b>note</b>"],
  });
  assert.doesNotMatch(html, /<script/i);
  assert.doesNotMatch(html, /<[^>]*\s(src|href)=/i);
  assert.doesNotMatch(html, /url\(/i);
  assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
  assert.match(html, /&lt;script src=&quot;https:\/\/evil/);
  assert.match(html, /a &lt;b&gt;note&lt;\/b&gt;/);
  assert.match(html, /<svg id="timeline"/);
});

Deno.test("reportHtml() spreads an agent's finished tasks over its ALIVE time", () => {
  const html = reportHtml({
    generatedAt: T0 + 60_000,
    services: services(),
    finished: [{
      agent: "agt-00000003",
      incarnation: 2,
      from: T0 + 30_000,
      to: T0 + 60_000,
      done: 60,
      failed: 6,
    }],
    notes: [],
  }, { buckets: 6 });
  const done = [...html.matchAll(/<title>([\d.]+) DONE<\/title>/g)].map((m) => Number(m[1]));
  const failed = [...html.matchAll(/<title>([\d.]+) FAILED or CANCELED<\/title>/g)].map((m) =>
    Number(m[1])
  );
  assert.equal(done.length, 6);
  assert.equal(Math.round(done.reduce((a, b) => a + b, 0)), 60);
  assert.equal(Math.round(failed.reduce((a, b) => a + b, 0)), 6);
  // Nothing before the incarnation became ALIVE (the span starts at T0, ten seconds per bar).
  assert.deepEqual(done.slice(0, 3), [0, 0, 0]);
  assert.match(html, /66 in all/);
});

Deno.test("aliveSince() is the first ALIVE of the current incarnation", () => {
  const list = services();
  const agent = list[0]!;
  assert.equal(aliveSince(agent.record, agent.transitions), T0 + 23_000);
  assert.equal(aliveSince(agent.record, []), agent.record.started);
});

Deno.test({
  name: "fabricd report writes the fabric's timeline, and exits 73, 69 and 78 on bad input",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withLocalFabric(async (local, dir) => {
      const queue = await spawnRole(local, "queue");
      const pubsub = await spawnRole(local, "pubsub");
      await spawnRole(local, "agent", { queue: queue.id, pubsub: pubsub.id, cores: "2" });
      await putTasks(local, queue, 20);
      await eventually(async () => {
        const counts = await queueCounts(local, queue);
        return counts.ready + counts.inflight === 0;
      }, { timeoutMs: 60_000 });
      const out = join(dir, "report.html");
      const ok = await runFabricd(["report", "--dir", dir, "--out", out]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /wrote .*report\.html \(5 services/);
      const html = await Deno.readTextFile(out);
      for (const r of await local.registry.list()) {
        assert.match(html, new RegExp(`data-id="${r.id}" data-role="${r.role}"`));
      }
      assert.match(html, /data-state="ALIVE"/);
      assert.equal(Number(/(\d+) in all/.exec(html)?.[1]), 20, "the agent's 20 tasks");
      assert.doesNotMatch(html, /<script/i);

      const unwritable = await runFabricd([
        "report",
        "--dir",
        dir,
        "--out",
        join(dir, "no", "r.html"),
      ]);
      assert.equal(unwritable.code, EXIT_CANNOT_CREATE, unwritable.stderr);
      assert.match(
        unwritable.stderr,
        /Cannot write the report to ".*no\/r\.html".*choose a writable --out/,
      );

      await local.stopAll("test: report on a stopped fabric");
      const stopped = await runFabricd(["report", "--dir", dir, "--out", out]);
      assert.equal(stopped.code, EXIT.UNREACHABLE, stopped.stderr);
      assert.match(stopped.stderr, /fabricd up/);
    });
    await withTempDir(async (dir) => {
      const none = await runFabricd(["report", "--dir", dir, "--out", join(dir, "r.html")]);
      assert.equal(none.code, EXIT.CONFIG, none.stderr);
      const both = await runFabricd(["report", "--dir", dir, "--fabric", join(dir, "f.yaml")]);
      assert.equal(both.code, EXIT.USAGE, both.stderr);
    });
  },
});

Deno.test("fabricd report refuses an --out that is a directory with 73, before it reads or writes anything", async () => {
  await withTempDir(async (dir) => {
    // A fabric never brought up: a check after loading it would exit 78 instead.
    const fabric = join(dir, "fabric.yaml");
    await initFabric(fabric);
    const target = join(dir, "out");
    await Deno.mkdir(target);
    const before = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
    for (const out of [target, `${target}/`]) {
      const refused = await runFabricd(["report", "--fabric", fabric, "--out", out]);
      assert.equal(refused.code, EXIT_CANNOT_CREATE, refused.stderr);
      assert.match(
        refused.stderr,
        /Cannot write the report to ".*\/out": it is a directory: give a file name for --out \(e\.g\. --out .*\/out\/report\.html\)/,
      );
      assert.doesNotMatch(refused.stderr, /\n\s+at /);
    }
    const after = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
    assert.deepEqual(after, before, "nothing written beside it");
    assert.deepEqual(await Array.fromAsync(Deno.readDir(target)), [], "nothing written in it");
  });
});
