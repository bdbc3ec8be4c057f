/**
 * The `/metrics` gateway of `fabricd ui` (issue 13) on a fabric with every
 * role, scraped directly and by a real Prometheus (Debian's `prometheus`)
 * with the prometheus.yml snippet of docs/observability.md.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { LocalFabric } from "../../src/cli/local_fabric.ts";
import type { SpawnResult } from "../../src/types/mod.ts";
import { withLocalFabric } from "./_fabric.ts";
import { eventually } from "../_eventually.ts";
import { onPath, skipPolicy } from "./_prereq.ts";
import { startUi } from "./_ui.ts";

const ROLES = ["registry", "spawner", "bridge", "queue", "pubsub", "agent", "pilot-manager"];
const policy = skipPolicy(
  (await onPath("prometheus"))
    ? { ok: true }
    : { ok: false, reason: "missing prometheus; install with: apt-get install -y prometheus" },
  "The Prometheus test of fabricd ui",
);

async function spawn(local: LocalFabric, body: Record<string, unknown>): Promise<string> {
  const result = await local.client.call<SpawnResult>(local.spawner, {
    method: "POST",
    path: "/v1/spawn",
    body,
  }, { timeoutMs: 60_000 });
  return result.id;
}

/** A fabric with one service of every role, like the demo's. */
async function everyRole(local: LocalFabric): Promise<void> {
  await spawn(local, { role: "bridge" });
  const queue = await spawn(local, { role: "queue" });
  const pubsub = await spawn(local, { role: "pubsub" });
  await spawn(local, { role: "agent", options: { queue, pubsub, cores: "1" } });
  await spawn(local, { role: "pilot-manager", options: { on: "local://" } });
}

function freePort(): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return Promise.resolve(port);
}

Deno.test({
  name:
    "fabricd ui's /metrics has series of every role with service, role and host labels, refuses an unauthenticated scrape, and a real Prometheus scrapes it",
  fn: async (t) => {
    await withLocalFabric(async (local, dir) => {
      await everyRole(local);
      const ui = await startUi(dir);
      try {
        const refused = await fetch(`${ui.base}/metrics`);
        assert.equal(refused.status, 401);
        assert.doesNotMatch(await refused.text(), /fabricd_/);
        const wrong = await fetch(`${ui.base}/metrics`, {
          headers: { authorization: "Bearer not-the-token" },
        });
        assert.equal(wrong.status, 401);
        await wrong.body?.cancel();
        const answer = await fetch(`${ui.base}/metrics`, {
          headers: { authorization: `Bearer ${ui.bearer}` },
        });
        assert.equal(answer.status, 200);
        const text = await answer.text();
        const records = await local.registry.list();
        for (const r of records.filter((r) => r.state === "ALIVE")) {
          assert.match(
            text,
            new RegExp(
              `fabricd_process_resident_memory_bytes\\{service="${r.id}",role="${r.role}",host="${r.host}"\\} \\d+`,
            ),
            `${r.role} ${r.id}`,
          );
          assert.match(text, new RegExp(`fabricd_ui_scrape_up\\{service="${r.id}".*\\} 1`));
        }
        for (const role of ROLES) assert.match(text, new RegExp(`role="${role}"`), role);
        assert.match(
          text,
          /fabricd_registry_services\{service="reg-[0-9a-f]{8}",role="registry",host="[^"]*",exported_role="spawner",state="ALIVE"\} [1-9]/,
        );
        assert.match(text, /fabricd_agent_slots\{[^}]*role="agent"[^}]*state="free"\} 1/);
        assert.match(text, /fabricd_spawns_total\{[^}]*launcher="local",outcome="ok"\} [1-9]/);
        assert.equal((text.match(/^# TYPE fabricd_requests_total /gm) ?? []).length, 1);

        await t.step({
          name: "Prometheus scrapes it with the documented snippet",
          ignore: policy.skip,
          fn: async () => {
            policy.assertReady();
            const port = await freePort();
            const data = join(dir, "prometheus-data");
            const config = join(dir, "prometheus.yml");
            await Deno.writeTextFile(
              config,
              `global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: fabricd
    authorization:
      credentials_file: ${ui.tokenFile}
    static_configs:
      - targets: ["${new URL(ui.base).host}"]
`,
            );
            const prometheus = new Deno.Command("prometheus", {
              args: [
                `--config.file=${config}`,
                `--storage.tsdb.path=${data}`,
                `--web.listen-address=127.0.0.1:${port}`,
              ],
              stdout: "null",
              stderr: "null",
            }).spawn();
            try {
              const query = "count by (role) (fabricd_process_resident_memory_bytes)";
              const roles = await eventually(async () => {
                const answer = await fetch(
                  `http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(query)}`,
                );
                const body = await answer.json() as {
                  data: { result: { metric: { role: string } }[] };
                };
                const found = body.data.result.map((r) => r.metric.role).sort();
                return found.length === ROLES.length ? found : undefined;
              }, { timeoutMs: 60_000 }).catch(async (error) => {
                const targets = await fetch(`http://127.0.0.1:${port}/api/v1/targets`)
                  .then((r) => r.text()).catch(() => "");
                throw new Error(`${error.message}; targets: ${targets.slice(0, 1500)}`);
              });
              assert.deepEqual(roles, [...ROLES].sort());
            } finally {
              prometheus.kill("SIGTERM");
              await prometheus.status;
            }
          },
        });
      } finally {
        await ui.stop();
      }
    }, { heartbeatMs: 500 });
  },
});
