/**
 * A compromised compute node, for `ssh_fabric_test.ts`: bundled and put in
 * place of the image's `js/main.js` on compute1, as an attacker who owns the
 * node's account could do, so that the next service launched there runs this
 * instead. It bootstraps as that service, with the one-time password its
 * parent (the bridge on head) wrote on its stdin, and so holds a genuine key
 * and certificate chain of a compute node. Then it attacks with them: its
 * parent, its sibling on compute1 (through the bridge), and the registry.
 * It writes the HTTP status of each attempt as JSON to `$HOME/attack.json`
 * and exits 0. Meanwhile it holds the parent's configure call unanswered, so
 * that the spawn neither fails nor revokes it before the attempts are made.
 * @module
 */
import { bootstrapFromParent, takeBootstrapEnv } from "../../src/bootstrap/child.ts";
import { FabricClient, type Target } from "../../src/client/fabric_client.ts";
import { statusOf } from "./_identities.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";

async function attack(): Promise<Record<string, unknown>> {
  const id = Deno.args[Deno.args.indexOf("--id") + 1] ?? "";
  const env = await takeBootstrapEnv();
  // A warm process (the bridge's pool refills after the spawn) has no password: not ours.
  if (!env) Deno.exit(0);
  // The parent's configure call comes here and gets no answer.
  const hold = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  (async () => {
    for await (const conn of hold) held.push(conn);
  })();
  const { keys, registries, parent } = await bootstrapFromParent(env, {
    serviceId: id,
    endpoint: `http://127.0.0.1:${hold.addr.port}`,
    host: Deno.hostname(),
  });
  const client = new FabricClient(keys);
  const registry: Target = { id: registries[0]!.id, url: registries[0]!.url };
  const { services } = await client.call<{ services: ServiceRecord[] }>(registry, {
    method: "GET",
    path: "/v1/registry/services",
  });
  const me = services.find((r) => r.id === id);
  const root = services.find((r) => r.parent === "" && r.role === "spawner")!;
  const sibling = services.find((r) =>
    r.id !== id && r.parent === parent.id && r.host === Deno.hostname() && r.state === "ALIVE"
  )!;
  const up: Target = { id: parent.id, url: parent.url };
  const rewrite = (record: ServiceRecord) =>
    client.call(registry, {
      method: "PUT",
      path: `/v1/registry/services/${record.id}`,
      body: { record: { ...record, endpoint: "http://127.0.0.1:9" }, reason: "taken over" },
    });
  return {
    id,
    chainLinks: keys.identity?.split(",").length ?? 0,
    route: me?.route ?? [],
    sibling: sibling.id,
    spawnOnParent: await statusOf(
      client.call(up, { method: "POST", path: "/v1/spawn", body: { role: "spawner" } }),
    ),
    stopParent: await statusOf(
      client.call(up, { method: "POST", path: "/v1/stop", body: { reason: "evicted" } }),
    ),
    stopSibling: await statusOf(
      client.call({ id: sibling.id, url: parent.url, route: sibling.route }, {
        method: "POST",
        path: "/v1/stop",
        body: { reason: "evicted" },
      }),
    ),
    rewriteRootSpawner: await statusOf(rewrite(root)),
    rewriteSibling: await statusOf(rewrite(sibling)),
    stopRegistry: await statusOf(
      client.call(registry, { method: "POST", path: "/v1/stop", body: { reason: "evicted" } }),
    ),
    readRegistry: await statusOf(
      client.call(registry, { method: "GET", path: "/v1/registry/services" }),
    ),
  };
}

const out = `${Deno.env.get("HOME") ?? "/tmp"}/attack.json`;
const result = await attack().catch((error) => ({ error: String(error) }));
await Deno.writeTextFile(out, JSON.stringify(result) + "\n");
Deno.exit(0);
