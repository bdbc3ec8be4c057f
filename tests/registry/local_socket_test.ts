import assert from "node:assert/strict";
import { join } from "node:path";
import { serveLocalReads } from "../../src/registry/local_socket.ts";
import { localStatus } from "../../src/cli/status_local.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";
import { withTempDir } from "../e2e/_fabric.ts";

const FINGERPRINT = `sha256:${"ab".repeat(32)}`;
const RECORD = {
  id: "reg-00000001",
  role: "registry",
  state: "ALIVE",
  incarnation: 1,
  host: "h",
  pid: 1,
  endpoint: "http://127.0.0.1:1",
  parent: "",
  route: ["reg-00000001"],
  launcher: "local://",
  imageHash: "",
  sessions: [],
  started: 1,
  lastHeartbeat: 1,
  restarts: 0,
  lastFailure: "",
  updated: 1,
  options: {},
} as ServiceRecord;

async function ask(path: string, method = "GET", at = "/v1/registry/services") {
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path } });
  try {
    const answer = await fetch(`http://registry${at}`, { method, client });
    return { status: answer.status, body: await answer.json() };
  } finally {
    client.close();
  }
}

Deno.test("the local read socket answers GET /v1/registry/services only, 0600, and goes away on stop", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "registry.sock");
    let records: ServiceRecord[] | null = [RECORD];
    const socket = await serveLocalReads(path, {
      id: "reg-00000001",
      fingerprint: () => FINGERPRINT,
      list: () => records ? Promise.resolve(records) : null,
    });
    assert.ok(socket);
    try {
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      assert.deepEqual(await ask(path), {
        status: 200,
        body: { registry: "reg-00000001", fingerprint: FINGERPRINT, services: [RECORD] },
      });
      assert.equal((await ask(path, "POST")).status, 405);
      assert.equal((await ask(path, "GET", "/v1/registry/services/reg-00000001")).status, 404);
      assert.equal((await ask(path, "GET", "/v1/registry/services?role=agent")).status, 404);
      assert.equal(
        (await ask(path, "GET", "/v1/registry/services?")).status,
        404,
        "an empty query",
      );
      // A second registry on the same path serves nothing.
      const second = await serveLocalReads(path, {
        id: "reg-00000002",
        fingerprint: () => FINGERPRINT,
        list: () => Promise.resolve([]),
      });
      assert.equal(second, null);
      records = null;
      assert.equal((await ask(path)).status, 503);
    } finally {
      await socket.stop();
    }
    assert.equal(await Deno.stat(path).catch(() => null), null);
  });
});

Deno.test("the local read socket replaces a socket file left by a registry that died", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "registry.sock");
    const dead = Deno.listen({ transport: "unix", path });
    dead.close(); // the file may stay behind, with nobody listening
    await Deno.writeTextFile(path, "").catch(() => {});
    const socket = await serveLocalReads(path, {
      id: "reg-00000001",
      fingerprint: () => FINGERPRINT,
      list: () => Promise.resolve([]),
    });
    assert.ok(socket);
    assert.equal((await ask(path)).status, 200);
    await socket.stop();
  });
});

Deno.test("status through the local socket: only for the fabric file's own registry and fingerprint, in a private directory", async () => {
  await withTempDir(async (dir) => {
    await Deno.chmod(dir, 0o700);
    const file = join(dir, "fabric.yaml");
    const write = (fingerprint: string) =>
      Deno.writeTextFile(
        file,
        `version: 1\nkey: fabric.key\nfingerprint: ${fingerprint}\nregistries:\n` +
          `  - id: reg-00000001\n    url: http://127.0.0.1:1\nsessions: []\ndir: ${dir}\n`,
      );
    const socket = await serveLocalReads(join(dir, "registry.sock"), {
      id: "reg-00000001",
      fingerprint: () => FINGERPRINT,
      list: () => Promise.resolve([RECORD]),
    });
    assert.ok(socket);
    const printed: string[] = [];
    const log = console.log;
    console.log = (text: string) => printed.push(text);
    try {
      await write(FINGERPRINT);
      assert.equal(await localStatus(["--fabric", file]), 0);
      assert.match(printed.join("\n"), /^SERVICE +ROLE[\s\S]*reg-00000001 +registry +h +1 +ALIVE/);
      // Anything it does not serve falls through to the signed path (null).
      assert.equal(await localStatus(["--fabric", file, "--role", "agent"]), null);
      assert.equal(await localStatus(["--fabric", file, "reg-00000001"]), null);
      await write(`sha256:${"cd".repeat(32)}`);
      assert.equal(await localStatus(["--fabric", file]), null, "another fabric's registry");
      await write(FINGERPRINT);
      await Deno.chmod(dir, 0o770);
      assert.equal(await localStatus(["--fabric", file]), null, "a directory others may write");
    } finally {
      console.log = log;
      await socket.stop();
    }
  });
});
