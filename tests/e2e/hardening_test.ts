/**
 * The holes an independent client found (issue 14), on a local fabric of
 * real processes: a bridge as an open proxy, strangers burning a pending
 * bootstrap, a replay after a SIGKILL and restart, and slow clients.
 */
import assert from "node:assert/strict";
import type { LocalFabric } from "../../src/cli/local_fabric.ts";
import { signRequest } from "../../src/crypto/mod.ts";
import type { ServiceRecord, SpawnResult } from "../../src/types/mod.ts";
import { FABRICD, withLocalFabric } from "./_fabric.ts";
import { eventually } from "../_eventually.ts";

const HEARTBEAT_MS = 500;

async function spawn(local: LocalFabric, role: string): Promise<ServiceRecord> {
  const result = await local.client.call<SpawnResult>(local.spawner, {
    method: "POST",
    path: "/v1/spawn",
    body: { role },
  });
  return (await local.registry.get(result.id))!.record;
}

/** An HTTP server that counts what reaches it: the proxy's would-be victim. */
function startVictim(): { port: number; hits: string[]; server: Deno.HttpServer<Deno.NetAddr> } {
  const hits: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    hits.push(request.url);
    return new Response("secret inside");
  });
  return { port: server.addr.port, hits, server };
}

async function rawGet(port: number, target: string, headers: Record<string, string>) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const lines = [`GET ${target} HTTP/1.1`, `host: 127.0.0.1:${port}`, "connection: close"];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  await conn.write(new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
  return await new Response(conn.readable).text();
}

Deno.test("a bridge refuses requests with a //HOST:PORT or /\\HOST:PORT target (400 at its front) and reaches nobody", async () => {
  await withLocalFabric(async (local) => {
    const bridge = await spawn(local, "bridge");
    const victim = startVictim();
    try {
      const port = Number(new URL(bridge.endpoint).port);
      for (const target of [`//127.0.0.1:${victim.port}/x`, `/\\127.0.0.1:${victim.port}/x`]) {
        const answer = await rawGet(port, target, { "fabric-target": local.registryTarget.id });
        // The connection front refuses a path not in normal form before the relay sees it.
        assert.match(answer, /^HTTP\/1.1 400/, `${target}: ${answer.slice(0, 200)}`);
        assert.match(answer, /Request path must be in normal form/);
        assert.doesNotMatch(answer, /secret inside/);
      }
      assert.deepEqual(victim.hits, []);
    } finally {
      await victim.server.shutdown();
    }
  }, { heartbeatMs: HEARTBEAT_MS });
});

Deno.test("a spawn and a restart succeed while another process sends 500 wrong proofs a second for the ID, directly and through a bridge", async () => {
  await withLocalFabric(async (local) => {
    const bridge = await spawn(local, "bridge");
    const attacker = new Deno.Command(FABRICD[0]!, {
      args: [
        "run",
        "--quiet",
        "--allow-all",
        new URL("./_proof_flood.ts", import.meta.url).pathname,
        "500",
        local.spawner.id,
        [local.spawner.url, bridge.endpoint].join(","),
        [local.registryTarget.id, local.spawner.id, bridge.id].join(","),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    try {
      // Give the attacker time to start its flood.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const child = await spawn(local, "spawner");
      assert.equal(child.state, "ALIVE");
      // Make sure the attacker knows the child's ID, then kill it: its restart
      // is flooded from the first moment its password exists.
      const writer = attacker.stdin.getWriter();
      await writer.write(new TextEncoder().encode(`${child.id}\n`));
      writer.releaseLock();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      Deno.kill(child.pid, "SIGKILL");
      const after = await eventually(async () => {
        const record = (await local.registry.get(child.id))!.record;
        return record.state === "ALIVE" && record.incarnation === 2 ? record : undefined;
      }, { timeoutMs: 30_000 });
      assert.notEqual(after.pid, child.pid);
    } finally {
      await attacker.stdin.close();
      const out = new TextDecoder().decode((await attacker.output()).stdout);
      const sent = Number(/SENT (\d+)/.exec(out)?.[1] ?? 0);
      // The flood really ran: at least 100 proofs a second over the 4 s or more it
      // lasted (its 500 a second are a goal that two loaded cores may not reach).
      assert.ok(sent >= 400, `the attacker sent only ${sent} proofs: ${out}`);
    }
  }, { heartbeatMs: HEARTBEAT_MS });
});

Deno.test("a restarted service refuses a request its previous incarnation accepted, after SIGKILL", async () => {
  await withLocalFabric(async (local) => {
    const child = await spawn(local, "spawner");
    const path = "/v1/status";
    const signed = await signRequest(
      { method: "GET", url: new URL(path, child.endpoint), body: new Uint8Array() },
      local.keys,
      { target: child.id, expiresInSeconds: 60 },
    );
    const old = await signRequest(
      { method: "GET", url: new URL(path, child.endpoint), body: new Uint8Array() },
      local.keys,
      { target: child.id, expiresInSeconds: 60, now: Date.now() - 20_000 },
    );
    const first = await fetch(new URL(path, child.endpoint), { headers: signed.headers });
    assert.equal(first.status, 200);
    await first.body?.cancel();
    Deno.kill(child.pid, "SIGKILL");
    const after = await eventually(async () => {
      const record = (await local.registry.get(child.id))!.record;
      return record.state === "ALIVE" && record.incarnation === 2 ? record : undefined;
    }, { timeoutMs: 30_000 });
    const replay = await fetch(new URL(path, after.endpoint), { headers: signed.headers });
    assert.equal(replay.status, 401);
    assert.match((await replay.json()).error, /Nonce already used/);
    const stale = await fetch(new URL(path, after.endpoint), { headers: old.headers });
    assert.equal(stale.status, 401);
    assert.match((await stale.json()).error, /created before this service started/);
  }, { heartbeatMs: HEARTBEAT_MS });
});

Deno.test("a service held by 1,000 half-open connections answers signed requests and drops them after the header deadline", async () => {
  await withLocalFabric(async (local) => {
    const child = await spawn(local, "spawner");
    const port = Number(new URL(child.endpoint).port);
    const fds = () => [...Deno.readDirSync(`/proc/${child.pid}/fd`)].length;
    const before = fds();
    const slow: Deno.TcpConn[] = [];
    try {
      for (let i = 0; i < 1000; i++) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        slow.push(conn);
        await conn.write(
          new TextEncoder().encode("GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: "),
        );
      }
      const status = await local.client.call<{ id: string }>(
        { id: child.id, url: child.endpoint },
        { method: "GET", path: "/v1/status" },
      );
      assert.equal(status.id, child.id);
      // Bounded while held (the front keeps at most its per-peer limit of them)...
      assert.ok(fds() < before + 400, `${fds()} descriptors open, ${before} before`);
      // ...and gone after the 10 s header deadline.
      await eventually(() => fds() <= before + 10, { timeoutMs: 20_000 });
    } finally {
      for (const conn of slow) {
        try {
          conn.close();
        } catch {
          // Closed by the service.
        }
      }
    }
  }, { heartbeatMs: HEARTBEAT_MS });
});

Deno.test("a spawned service's environment never holds its one-time password", async () => {
  await withLocalFabric(async (local) => {
    const child = await spawn(local, "spawner");
    const environ = (await Deno.readTextFile(`/proc/${child.pid}/environ`)).split("\0");
    assert.ok(environ.some((e) => e.startsWith("FABRIC_PARENT=")), "not the service's environment");
    assert.ok(!environ.some((e) => e.startsWith("FABRIC_OTP=")), "FABRIC_OTP is readable in /proc");
  }, { heartbeatMs: HEARTBEAT_MS });
});
