import assert from "node:assert/strict";
import type { KeyHandover } from "../../src/bootstrap/handover.ts";
import { Children, type ChildrenDeps } from "../../src/children/children.ts";
import type { SpawnDeps } from "../../src/children/spawn_flow.ts";
import type { FabricClient } from "../../src/client/fabric_client.ts";
import type { FabricKeys } from "../../src/crypto/keys.ts";
import type { LaunchedProcess } from "../../src/launchers/launcher.ts";
import { ServiceMetrics } from "../../src/metrics/service_metrics.ts";
import { ConflictError, SpawnFailedError } from "../../src/types/errors.ts";
import type { SpawnResult } from "../../src/types/mod.ts";
import type { SpawnRequest } from "../../src/types/wire.ts";
import { eventually } from "../_eventually.ts";
import { type FakeRegistry, fakeRegistry } from "../_fake_registry.ts";
import { serviceRecord } from "../_fixtures.ts";

const PARENT = "spw-parent01";
const CHILD = "que-child001";
const CHILD_URL = "http://127.0.0.1:7801";
const REGISTRIES = [{ id: "reg-00000001", url: "http://127.0.0.1:7600" }];
// Handed through to the spawn flow untouched: these tests only check they arrive.
const KEYS = { stands: "for the keys" } as unknown as FabricKeys;
const CLIENT = { stands: "for the client" } as unknown as FabricClient;
const HANDOVER = { stands: "for the hand-over" } as unknown as KeyHandover;

type Flow = NonNullable<ChildrenDeps["spawnFlow"]>;

/** A spawn flow that logs each call and answers as `answer` says. */
function scriptedFlow(answer: (request: SpawnRequest, deps: SpawnDeps) => Promise<SpawnResult>) {
  const calls: { request: SpawnRequest; deps: SpawnDeps }[] = [];
  const flow: Flow = (request, deps) => {
    calls.push({ request, deps });
    return answer(request, deps);
  };
  return { flow, calls };
}

/** A launched child: `exit()` ends it, `signals` lists what it was sent. */
function fakeChild() {
  let exit = (_code: number): void => {};
  const exited = new Promise<number>((resolve) => (exit = resolve));
  const signals: string[] = [];
  const child: LaunchedProcess = {
    pid: 0,
    host: "node-1",
    logFile: "",
    exited,
    reach: (endpoint) => Promise.resolve(endpoint),
    kill: (signal = "SIGTERM") => void signals.push(signal),
  };
  return { child, exit, signals };
}

function request(patch: Partial<SpawnRequest> = {}): SpawnRequest {
  return { role: "queue", on: "ssh://node-1", sessions: [], options: {}, ...patch };
}

function childrenOf(fake: FakeRegistry, flow: Flow, metrics?: ServiceMetrics): Children {
  return new Children({
    self: { id: PARENT, url: "http://127.0.0.1:7700", route: [PARENT] },
    keys: KEYS,
    client: CLIENT,
    registry: fake.client,
    handover: HANDOVER,
    registries: REGISTRIES,
    dir: "/state/spw-parent01",
    heartbeatMs: 60_000,
    policyOf: () => "fresh",
    metrics,
    spawnFlow: flow,
  });
}

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open = (): void => {};
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

Deno.test("Children.spawn() runs the injected spawn flow with the parent's facts and remembers the child's endpoint", async () => {
  const fake = fakeRegistry();
  const { flow, calls } = scriptedFlow(() =>
    Promise.resolve({ id: CHILD, endpoint: CHILD_URL, state: "ALIVE" })
  );
  const children = childrenOf(fake, flow);
  try {
    const result = await children.spawn(request({ sessions: ["s1"] }));
    assert.deepEqual(result, { id: CHILD, endpoint: CHILD_URL, state: "ALIVE" });
    const [call] = calls;
    assert.deepEqual(call?.request.sessions, ["s1"]);
    assert.deepEqual(call?.deps.self, {
      id: PARENT,
      url: "http://127.0.0.1:7700",
      route: [PARENT],
    });
    assert.equal(call?.deps.registry, fake.client);
    assert.equal(call?.deps.keys, KEYS);
    assert.equal(call?.deps.client, CLIENT);
    assert.equal(call?.deps.handover, HANDOVER);
    assert.deepEqual(call?.deps.registries, REGISTRIES);
    assert.equal(call?.deps.dir, "/state/spw-parent01");
    assert.equal(call?.deps.heartbeatMs, 60_000);
    assert.deepEqual(children.ids(), [CHILD]);
    assert.equal(await children.endpoint(CHILD), CHILD_URL);
    assert.equal(fake.callsOf("get").length, 0, "its own spawn's endpoint is known");
  } finally {
    children.stopSupervising();
  }
});

Deno.test("Children.spawn() tells the caller's onRecorded hook, and forgets a spawn that failed", async () => {
  const fake = fakeRegistry();
  const { flow } = scriptedFlow((_request, deps) => {
    deps.onRecorded?.({ id: CHILD, incarnation: 1 });
    return Promise.reject(new SpawnFailedError(CHILD, "bootstrap timed out", null));
  });
  const children = childrenOf(fake, flow);
  const recorded: { id: string; incarnation: number }[] = [];
  try {
    await assert.rejects(
      children.spawn(request(), { onRecorded: (service) => recorded.push(service) }),
      SpawnFailedError,
    );
    assert.deepEqual(recorded, [{ id: CHILD, incarnation: 1 }]);
    assert.deepEqual(children.ids(), []);
  } finally {
    children.stopSupervising();
  }
});

Deno.test("Children.spawn() declares a launched child that exits DEAD and restarts it under its old ID", async () => {
  const fake = fakeRegistry([
    serviceRecord(CHILD, { role: "queue", parent: PARENT, launcher: "ssh://node-1" }),
  ]);
  const launched = fakeChild();
  const { flow, calls } = scriptedFlow((req, deps) => {
    if (!req.restart) {
      deps.onRecorded?.({ id: CHILD, incarnation: 1 });
      deps.onLaunched?.(launched.child, { id: CHILD, incarnation: 1 });
    }
    return Promise.resolve({ id: CHILD, endpoint: CHILD_URL, state: "ALIVE" });
  });
  const children = childrenOf(fake, flow);
  try {
    await children.spawn(request());
    launched.exit(137);
    await eventually(() => fake.transitions().length > 0, { timeoutMs: 2000 });
    assert.deepEqual(
      fake.transitions().map((t) => [t.id, t.incarnation, t.to, t.exited, t.reason]),
      [[CHILD, 1, "DEAD", true, "process exited with code 137"]],
    );
    await eventually(() => calls.length === 2, { timeoutMs: 2000, what: "the restart" });
    assert.equal(calls[1]?.request.restart, CHILD);
    assert.equal(calls[1]?.request.role, "queue");
  } finally {
    children.stopSupervising();
  }
});

Deno.test("Children.spawn() kills its child and throws ConflictError when supervision stopped while it ran", async () => {
  const fake = fakeRegistry();
  const launched = fakeChild();
  const wasLaunched = gate();
  const release = gate();
  const { flow } = scriptedFlow(async (_request, deps) => {
    deps.onLaunched?.(launched.child, { id: CHILD, incarnation: 1 });
    wasLaunched.open();
    await release.opened;
    return { id: CHILD, endpoint: CHILD_URL, state: "ALIVE" };
  });
  const children = childrenOf(fake, flow);
  try {
    const spawning = children.spawn(request());
    await wasLaunched.opened;
    children.stopSupervising();
    assert.deepEqual(launched.signals, [], "the spawn is left to finish");
    release.open();
    await assert.rejects(spawning, (error) => {
      assert.ok(error instanceof ConflictError);
      assert.match(error.message, /is stopping: spawn undone/);
      return true;
    });
    assert.deepEqual(launched.signals, ["SIGTERM"]);
    assert.deepEqual(children.ids(), []);
  } finally {
    release.open();
    children.stopSupervising();
  }
});

Deno.test("Children.killLaunching() sends SIGTERM to children still bootstrapping, not to those whose spawn returned", async () => {
  const fake = fakeRegistry();
  const done = fakeChild();
  const busy = fakeChild();
  const busyLaunched = gate();
  const release = gate();
  const { flow } = scriptedFlow(async (req, deps) => {
    if (req.on === "ssh://node-1") {
      deps.onLaunched?.(done.child, { id: CHILD, incarnation: 1 });
      return { id: CHILD, endpoint: CHILD_URL, state: "ALIVE" };
    }
    deps.onLaunched?.(busy.child, { id: "que-child002", incarnation: 1 });
    busyLaunched.open();
    await release.opened;
    return { id: "que-child002", endpoint: "http://127.0.0.1:7802", state: "ALIVE" };
  });
  const children = childrenOf(fake, flow);
  try {
    await children.spawn(request());
    const spawning = children.spawn(request({ on: "ssh://node-2" }));
    await busyLaunched.opened;
    children.killLaunching();
    assert.deepEqual(busy.signals, ["SIGTERM"]);
    assert.deepEqual(done.signals, []);
    release.open();
    await spawning;
    children.killLaunching();
    assert.deepEqual(busy.signals, ["SIGTERM"], "a returned spawn is no longer launching");
  } finally {
    release.open();
    children.stopSupervising();
  }
});

Deno.test("Children.endpoint() asks the registry for a child it did not spawn, answers only its own, and keeps what it found", async () => {
  const fake = fakeRegistry([
    serviceRecord(CHILD, { parent: PARENT, endpoint: CHILD_URL }),
    serviceRecord("que-strange1", { parent: "spw-someone1", endpoint: "http://127.0.0.1:7809" }),
    serviceRecord("que-nourl001", { parent: PARENT, endpoint: "" }),
  ]);
  const children = childrenOf(fake, scriptedFlow(() => Promise.reject(new Error("no spawn"))).flow);
  assert.equal(await children.endpoint(CHILD), CHILD_URL);
  assert.equal(await children.endpoint(CHILD), CHILD_URL);
  assert.equal(fake.callsOf("get").length, 1, "found once, then known");
  assert.equal(await children.endpoint("que-strange1"), undefined, "another parent's child");
  assert.equal(await children.endpoint("que-nourl001"), undefined, "no endpoint yet");
  assert.equal(await children.endpoint("que-unknown1"), undefined);
  assert.deepEqual(children.ids(), [CHILD]);
});

Deno.test("Children.endpoint() answers undefined when the registry cannot be reached", async () => {
  const fake = fakeRegistry([serviceRecord(CHILD, { parent: PARENT, endpoint: CHILD_URL })]);
  fake.failing.set("get", new Error("connection refused"));
  const children = childrenOf(fake, scriptedFlow(() => Promise.reject(new Error("no spawn"))).flow);
  assert.equal(await children.endpoint(CHILD), undefined);
  fake.failing.delete("get");
  assert.equal(await children.endpoint(CHILD), CHILD_URL, "a failed lookup is not kept");
});

Deno.test("Children.adopt() starts no supervision when no record names this service as parent", async () => {
  const fake = fakeRegistry();
  const children = childrenOf(fake, scriptedFlow(() => Promise.reject(new Error("no spawn"))).flow);
  try {
    await children.adopt([
      serviceRecord("que-strange1", { parent: "spw-someone1", state: "RESTARTING" }),
    ]);
    assert.deepEqual(fake.calls, [], "no reconcile, no registry stream");
  } finally {
    children.stopSupervising();
  }
});

Deno.test("Children.adopt() ends the spawns its previous incarnation left under way and resumes its restarts", async () => {
  const records = [
    serviceRecord("que-first001", {
      role: "queue",
      parent: PARENT,
      state: "LAUNCHING",
      pid: 0,
      launcher: "ssh://node-1",
    }),
    serviceRecord("pub-again001", {
      role: "pubsub",
      parent: PARENT,
      state: "RESTARTING",
      incarnation: 2,
      pid: 0,
      launcher: "ssh://node-1",
    }),
  ];
  const fake = fakeRegistry(records);
  const { flow, calls } = scriptedFlow((req) =>
    Promise.resolve({ id: req.restart ?? "x", endpoint: CHILD_URL, state: "ALIVE" })
  );
  const children = childrenOf(fake, flow);
  try {
    await children.adopt(records);
    assert.deepEqual(fake.transitions().map((t) => [t.id, t.to, t.exited]), [
      ["que-first001", "FAILED", false],
      ["pub-again001", "DEAD", true],
    ]);
    assert.equal(fake.callsOf("list").length, 0, "the records given are used");
    await eventually(() => calls.length > 0, { timeoutMs: 2000, what: "the resumed restart" });
    assert.deepEqual(calls.map((c) => [c.request.restart, c.request.role]), [
      ["pub-again001", "pubsub"],
    ]);
  } finally {
    children.stopSupervising();
  }
});

Deno.test("Children.spawn() counts and times spawns by launcher scheme and outcome, and counts restarts that worked", async () => {
  const fake = fakeRegistry();
  const metrics = new ServiceMetrics();
  const { flow } = scriptedFlow((req) =>
    req.on.startsWith("slurm://") || req.restart === "que-broken01"
      ? Promise.reject(new SpawnFailedError(CHILD, "launch failed", 1))
      : Promise.resolve({ id: req.restart ?? CHILD, endpoint: CHILD_URL, state: "ALIVE" })
  );
  const children = childrenOf(fake, flow, metrics);
  try {
    await children.spawn(request({ on: "ssh://node-1" }));
    await assert.rejects(children.spawn(request({ on: "slurm://cluster" })), SpawnFailedError);
    await children.spawn(request({ on: "", restart: "que-again001" }));
    await assert.rejects(children.spawn(request({ on: "", restart: "que-broken01" })));
    const spawns = (await metrics.spawns.get()).values;
    const count = (launcher: string, outcome: string): number | undefined =>
      spawns.find((v) => v.labels.launcher === launcher && v.labels.outcome === outcome)?.value;
    assert.equal(count("ssh", "ok"), 1);
    assert.equal(count("slurm", "failed"), 1);
    assert.equal(count("ssh", "failed"), undefined);
    const timed = (await metrics.spawnSeconds.get()).values.filter((v) =>
      v.metricName?.endsWith("_count")
    );
    assert.equal(timed.find((v) => v.labels.launcher === "ssh")?.value, 1);
    assert.equal(timed.find((v) => v.labels.launcher === "slurm")?.value, 1);
    assert.equal(
      (await metrics.restarts.get()).values[0]?.value,
      1,
      "the failed restart is not one",
    );
  } finally {
    children.stopSupervising();
  }
});

Deno.test("Children.adopt() lists the running children its previous incarnation left as its own", async () => {
  const fake = fakeRegistry();
  const children = childrenOf(fake, scriptedFlow(() => Promise.reject(new Error("no spawn"))).flow);
  try {
    await children.adopt([
      serviceRecord(CHILD, { parent: PARENT, state: "ALIVE", endpoint: CHILD_URL }),
      serviceRecord("que-gone0001", { parent: PARENT, state: "STOPPED", endpoint: CHILD_URL }),
      serviceRecord("que-strange1", { parent: "spw-someone1", endpoint: CHILD_URL }),
    ]);
    assert.deepEqual(children.ids(), [CHILD], "status names it among its children");
    assert.equal(await children.endpoint(CHILD), CHILD_URL);
  } finally {
    children.stopSupervising();
  }
});
