import assert from "node:assert/strict";
import { createApp } from "../../src/api/app.ts";
import type { ServiceHandlers } from "../../src/api/service_handlers.ts";
import { generateFabricKeys, ReplayCache, signRequest } from "../../src/crypto/mod.ts";
import { ServiceMetrics, signatureFailureReason } from "../../src/metrics/service_metrics.ts";
import type { RoleContext } from "../../src/runtime/role.ts";
import { registryRole } from "../../src/services/registry/registry_role.ts";
import { eventually } from "../_eventually.ts";

const keys = await generateFabricKeys();
const SERVICE = "spw-00000001";

function fixture() {
  const metrics = new ServiceMetrics();
  const handlers = {
    status: () => ({ id: SERVICE }),
    bootstrap: () => Promise.reject(new Error("not used")),
  } as unknown as ServiceHandlers;
  const app = createApp({
    serviceId: SERVICE,
    keys: () => keys,
    replayCache: new ReplayCache(),
    handlers,
    metrics,
  });
  return { app, metrics };
}

async function signedGet(
  app: ReturnType<typeof fixture>["app"],
  path: string,
  tamper?: (headers: Headers) => void,
): Promise<Response> {
  const url = new URL(path, "http://fabric.test");
  const signed = await signRequest(
    { method: "GET", url, headers: new Headers(), body: new Uint8Array() },
    keys,
    { target: SERVICE },
  );
  tamper?.(signed.headers);
  return await app.request(url, { method: "GET", headers: signed.headers });
}

Deno.test("GET /v1/metrics answers the Prometheus text format to a signed request", async () => {
  const { app } = fixture();
  await (await signedGet(app, "/v1/status")).body?.cancel();
  const answer = await signedGet(app, "/v1/metrics");
  assert.equal(answer.status, 200);
  assert.match(answer.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  assert.ok(answer.headers.get("signature"), "the answer is signed like every answer");
  const text = await answer.text();
  assert.match(text, /# TYPE fabricd_requests_total counter/);
  assert.match(
    text,
    /fabricd_requests_total\{route="\/v1\/status",method="GET",status="200"\} 1/,
  );
  assert.match(text, /fabricd_process_resident_memory_bytes [1-9]\d*/);
  assert.match(text, /fabricd_process_cpu_seconds_total \d/);
});

Deno.test("GET /v1/metrics refuses an unsigned scrape with 401 and no metrics", async () => {
  const { app } = fixture();
  const answer = await app.request("/v1/metrics");
  assert.equal(answer.status, 401);
  const body = await answer.text();
  assert.doesNotMatch(body, /fabricd_/);
});

Deno.test('a forged request raises fabricd_signature_failures_total{reason="bad_signature"}', async () => {
  const { app, metrics } = fixture();
  const forged = await signedGet(app, "/v1/status", (headers) => {
    const signature = headers.get("signature")!;
    // Flip one base64 character of the signature: well-formed, but wrong.
    const at = signature.indexOf(":") + 5;
    const swapped = signature[at] === "A" ? "B" : "A";
    headers.set("signature", signature.slice(0, at) + swapped + signature.slice(at + 1));
  });
  assert.equal(forged.status, 401);
  assert.match((await forged.json()).error, /Signature does not verify/);
  await (await app.request("/v1/status")).body?.cancel();
  const text = await metrics.text();
  assert.match(text, /fabricd_signature_failures_total\{reason="bad_signature"\} 1/);
  assert.match(text, /fabricd_signature_failures_total\{reason="missing"\} 1/);
});

Deno.test("signatureFailureReason() groups the 401 reasons of docs/protocol.md 2.7", () => {
  const cases: [string, string][] = [
    ["Missing Signature-Input header: sign the request with the fabric key", "missing"],
    ["Signature expired", "expired"],
    ["Nonce already used (replay)", "replay"],
    ["Signature does not verify", "bad_signature"],
    ['Request is for service "a", this is "b"', "wrong_target"],
    ["Missing Fabric-Target header: name the service the request is for", "wrong_target"],
    ['Unknown key "x": not this fabric\'s key', "unknown_key"],
    ["Content-Digest does not match the body", "bad_digest"],
    ["Malformed Signature header: it must be a canonical RFC 9421 field", "malformed"],
  ];
  for (const [reason, kind] of cases) assert.equal(signatureFailureReason(reason), kind, reason);
});

Deno.test("ServiceMetrics.gauge() reads its value at scrape time and is removed by its remover", async () => {
  const metrics = new ServiceMetrics();
  let depth = 3;
  const remove = metrics.gauge({
    name: "test_depth",
    help: "h",
    labelNames: ["q"],
    collect: (set) => set({ q: "a" }, depth),
  });
  assert.match(await metrics.text(), /fabricd_test_depth\{q="a"\} 3/);
  depth = 5;
  assert.match(await metrics.text(), /fabricd_test_depth\{q="a"\} 5/);
  remove();
  assert.doesNotMatch(await metrics.text(), /fabricd_test_depth/);
});

Deno.test("registryRole counts its liveness sweeps in fabricd_registry_sweeps_total and removes it on stop", async () => {
  const dir = await Deno.makeTempDir();
  const metrics = new ServiceMetrics();
  // Only what the registry role reads of its context: it sweeps every 25 ms here.
  const ctx = {
    serviceId: "reg-00000001",
    role: "registry",
    dir,
    options: { heartbeatMs: "100" },
    incarnation: 1,
    metrics,
  } as unknown as RoleContext;
  const role = await registryRole.start(ctx);
  try {
    const sweeps = async (): Promise<number> => {
      const match = (await metrics.text()).match(/^fabricd_registry_sweeps_total (\d+)$/m);
      return match ? Number(match[1]) : 0;
    };
    const first = await eventually(sweeps, { what: "a first sweep counted" });
    await eventually(async () => await sweeps() > first, { what: "the sweep count growing" });
    assert.match(await metrics.text(), /^fabricd_registry_sweep_duration_seconds_count [1-9]\d*$/m);
  } finally {
    await role.stop();
    await Deno.remove(dir, { recursive: true });
  }
  assert.doesNotMatch(await metrics.text(), /fabricd_registry_sweep/);
});
