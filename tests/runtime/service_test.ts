/**
 * FabricService composed of its parts. The service builds its registry client
 * from its keys, so its registry here is a real one on loopback (in-memory
 * SQLite, signed like every registry), and every request it gets is logged.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { TrieRouter } from "hono/router/trie-router";
import { createApp } from "../../src/api/app.ts";
import { RoleSlot } from "../../src/api/role_slot.ts";
import type { ServiceHandlers } from "../../src/api/service_handlers.ts";
import { generateFabricKeys, ReplayCache } from "../../src/crypto/mod.ts";
import { Registry } from "../../src/registry/registry.ts";
import { registryRoutes } from "../../src/registry/routes.ts";
import { SqliteStore } from "../../src/registry/sqlite_store.ts";
import type {
  RoleContext,
  RoleHandle,
  RoleModule,
  RoleStopOptions,
} from "../../src/runtime/role.ts";
import { FabricService } from "../../src/runtime/service.ts";
import type { ServicePlacement } from "../../src/runtime/service_spec.ts";
import { ConflictError, StateLostError } from "../../src/types/errors.ts";
import { EXIT } from "../../src/types/mod.ts";
import type { ConfigureRequest, ReadyRequest } from "../../src/types/wire.ts";
import { serviceRecord } from "../_fixtures.ts";

const keys = await generateFabricKeys();
const REGISTRY_ID = "reg-00000001";
const ID = "que-00000001";
const PARENT = "spw-parent01";
const ENDPOINT = "http://127.0.0.1:7801";
const TRANSITIONS = `POST /v1/registry/services/${ID}/transitions`;

/** A registry on loopback, and the requests it got ("METHOD /path"). */
interface TestRegistry {
  registry: Registry;
  url: string;
  seen: string[];
}

/** Handlers that refuse everything: what a test does not use. */
function refusingHandlers(): ServiceHandlers {
  const refuse = (): Promise<never> => Promise.reject(new ConflictError("Not in this test"));
  return {
    status: () => {
      throw new ConflictError("Not in this test");
    },
    bootstrap: refuse,
    configure: refuse,
    spawn: refuse,
    openSession: refuse,
    closeSession: refuse,
    connect: refuse,
    stop: refuse,
    renew: refuse,
    ready: refuse,
  };
}

async function withRegistry(fn: (r: TestRegistry) => Promise<void>): Promise<void> {
  const registry = new Registry(SqliteStore.open(":memory:"));
  const slot = new RoleSlot();
  const app = createApp({
    serviceId: REGISTRY_ID,
    keys: () => keys,
    replayCache: new ReplayCache(),
    handlers: refusingHandlers(),
    role: slot,
  });
  slot.mount({ routes: registryRoutes(() => registry) });
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    seen.push(`${request.method} ${new URL(request.url).pathname}`);
    return app.fetch(request);
  });
  try {
    await fn({ registry, url: `http://127.0.0.1:${server.addr.port}`, seen });
  } finally {
    await server.shutdown();
    await registry.close();
  }
}

/** A role that logs its starts and stops; `onStart` may fail its start. */
function fakeRole(onStart: (ctx: RoleContext) => Promise<void> = () => Promise.resolve()) {
  const started: RoleContext[] = [];
  const stops: RoleStopOptions[] = [];
  const module: RoleModule = {
    replacement: "fresh",
    start: async (ctx): Promise<RoleHandle> => {
      started.push(ctx);
      await onStart(ctx);
      return {
        routes: new Hono().get("/queue/ping", (c) => c.text("pong")),
        stop: (options = {}) => {
          stops.push(options);
          return Promise.resolve();
        },
      };
    },
  };
  return { module, started, stops };
}

/** A service of role queue whose role plugs into `app` (routes under `/v1`). */
function queueService(module: RoleModule) {
  const slot = new RoleSlot();
  const app = new Hono({ router: new TrieRouter() });
  slot.bind((routes) => app.route("/v1", routes));
  app.onError((error, c) =>
    c.text(error.message, error instanceof HTTPException ? error.status : 500)
  );
  const service = new FabricService({
    id: ID,
    instance: "inst-1",
    role: "queue",
    host: "node-1",
    dir: "/state/que-00000001",
    endpoint: ENDPOINT,
    options: { store: "memory", depth: "cli" },
  }, { module, slot });
  return { service, app };
}

function rootPlacement(url: string, patch: Partial<ServicePlacement> = {}): ServicePlacement {
  return {
    keys,
    registries: [{ id: REGISTRY_ID, url }],
    incarnation: 1,
    parent: "",
    route: [ID],
    launcher: "local://",
    endpoint: ENDPOINT,
    heartbeatMs: 60_000,
    sessions: ["s1"],
    options: { depth: "spawn" },
    ...patch,
  };
}

function configureRequest(patch: Partial<ConfigureRequest> = {}): ConfigureRequest {
  return {
    role: "queue",
    incarnation: 1,
    parent: PARENT,
    route: [PARENT, ID],
    launcher: "ssh://node-1",
    endpoint: ENDPOINT,
    heartbeatMs: 60_000,
    sessions: [],
    options: {},
    ...patch,
  };
}

/** The value of `promise`, or a failure after `ms`: no wait in a test is unbounded. */
async function within<T>(promise: Promise<T>, ms = 2000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `promise` has settled by the time already-queued work has run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  const pending = Symbol("pending");
  const timer = new Promise((resolve) => setTimeout(() => resolve(pending), 0));
  return (await Promise.race([promise, timer])) !== pending;
}

Deno.test("FabricService.place() starts the role with its options merged, mounts its routes and registers ALIVE", async () => {
  await withRegistry(async ({ registry, url }) => {
    const role = fakeRole();
    const { service, app } = queueService(role.module);
    service.holdKeys(keys, [{ id: REGISTRY_ID, url }]);
    try {
      assert.equal(await settled(service.placed), false);
      const record = await service.place(rootPlacement(url));
      const [ctx] = role.started;
      assert.equal(ctx?.serviceId, ID);
      assert.deepEqual(ctx?.options, { store: "memory", depth: "spawn" }, "the spawn's win");
      assert.equal(ctx?.incarnation, 1);
      assert.equal(ctx?.parent, null);
      assert.equal(ctx?.upstream(REGISTRY_ID), url);
      const answer = await app.request("/v1/queue/ping");
      assert.equal(answer.status, 200);
      assert.equal(await answer.text(), "pong");
      assert.equal(record.state, "ALIVE");
      const stored = await registry.get(ID);
      assert.equal(stored?.state, "ALIVE");
      assert.equal(stored?.instance, "inst-1");
      assert.deepEqual(stored?.sessions, ["s1"]);
      assert.equal(service.state, "ALIVE");
      assert.ok(await settled(service.placed));
      const status = service.status();
      assert.equal(status.incarnation, 1);
      assert.deepEqual(status.sessions, ["s1"]);
    } finally {
      await service.shutdown("test over");
    }
  });
});

Deno.test("FabricService.place() refuses a second placement with ConflictError and keeps the first", async () => {
  await withRegistry(async ({ url }) => {
    const role = fakeRole();
    const { service, app } = queueService(role.module);
    service.holdKeys(keys, [{ id: REGISTRY_ID, url }]);
    try {
      await service.place(rootPlacement(url));
      await assert.rejects(service.place(rootPlacement(url)), ConflictError);
      assert.equal(role.started.length, 1);
      assert.deepEqual(role.stops, []);
      assert.equal((await app.request("/v1/queue/ping")).status, 200);
    } finally {
      await service.shutdown("test over");
    }
  });
});

Deno.test("FabricService.place() stops and unmounts a started role when its registration is refused", async () => {
  await withRegistry(async ({ registry, url }) => {
    const role = fakeRole();
    const { service, app } = queueService(role.module);
    service.holdKeys(keys, [{ id: REGISTRY_ID, url }]);
    try {
      // The registry refuses a record whose endpoint has a path.
      await assert.rejects(service.place(rootPlacement(url, { endpoint: `${ENDPOINT}/x` })));
      assert.deepEqual(role.stops, [{}]);
      assert.equal((await app.request("/v1/queue/ping")).status, 503);
      assert.equal(await registry.get(ID), undefined);
      assert.notEqual(service.state, "ALIVE");
    } finally {
      await service.shutdown("test over");
    }
  });
});

Deno.test("FabricService.place() of a root that finds its old record runs as the next incarnation", async () => {
  await withRegistry(async ({ registry, url }) => {
    await registry.put(serviceRecord(ID, { role: "queue", incarnation: 3, route: [ID] }), "old");
    const { service } = queueService(fakeRole().module);
    service.holdKeys(keys, [{ id: REGISTRY_ID, url }]);
    try {
      const record = await service.place(rootPlacement(url, { incarnation: 1 }));
      assert.equal(record.incarnation, 4);
      assert.equal(service.status().incarnation, 4);
      const answer = await service.connect({ session: "app-1", client: "cli" });
      assert.equal(answer.incarnation, 4);
      const stored = await registry.get(ID);
      assert.deepEqual([stored?.state, stored?.incarnation], ["ALIVE", 4]);
    } finally {
      await service.shutdown("test over");
    }
    const stored = await registry.get(ID);
    assert.deepEqual([stored?.state, stored?.incarnation], ["STOPPED", 4]);
  });
});

Deno.test("FabricService.configure() registers the incarnation its spawner recorded and answers ALIVE", async () => {
  await withRegistry(async ({ registry, url }) => {
    const placed = { role: "queue" as const, parent: PARENT, route: [PARENT, ID] };
    // A child's life begins LAUNCHING (only a root service's begins ALIVE).
    await registry.put(serviceRecord(ID, { ...placed, state: "LAUNCHING" }), "spawned");
    await registry.transition(ID, { incarnation: 1, to: "FAILED", reason: "killed" });
    await registry.put(
      serviceRecord(ID, {
        role: "queue",
        state: "RESTARTING",
        incarnation: 2,
        parent: PARENT,
        route: [PARENT, ID],
        pid: 0,
        endpoint: "",
        restarts: 1,
      }),
      "restarting",
    );
    const role = fakeRole();
    const { service } = queueService(role.module);
    service.holdKeys(keys, [{ id: REGISTRY_ID, url }]);
    try {
      const answer = await service.configure(configureRequest({ incarnation: 2 }));
      assert.deepEqual(answer, { id: ID, role: "queue", state: "ALIVE", incarnation: 2 });
      assert.equal(role.started[0]?.incarnation, 2);
      const stored = await registry.get(ID);
      assert.equal(stored?.state, "ALIVE");
      assert.equal(stored?.incarnation, 2);
      assert.equal(stored?.restarts, 1, "the spawner counted the restart");
      assert.equal(stored?.endpoint, ENDPOINT);
    } finally {
      await service.shutdown("test over");
    }
  });
});

Deno.test("FabricService.configure() by the bootstrap answer reports ready to the parent and takes the record it answers, writing none itself", async () => {
  await withRegistry(async ({ url, seen }) => {
    const reports: ReadyRequest[] = [];
    const alive = serviceRecord(ID, {
      role: "queue",
      state: "ALIVE",
      incarnation: 1,
      parent: PARENT,
      route: [PARENT, ID],
    });
    const parentApp = createApp({
      serviceId: PARENT,
      keys: () => keys,
      replayCache: new ReplayCache(),
      handlers: {
        ...refusingHandlers(),
        ready: (_signer, report) => {
          reports.push(report);
          return Promise.resolve(alive);
        },
      },
    });
    const parent = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (r) => parentApp.fetch(r),
    );
    const role = fakeRole();
    const { service } = queueService(role.module);
    service.holdKeys(keys, [{ id: REGISTRY_ID, url }], {
      id: PARENT,
      url: `http://127.0.0.1:${parent.addr.port}`,
    });
    try {
      const answer = await service.configure(configureRequest(), true);
      assert.deepEqual(answer, { id: ID, role: "queue", state: "ALIVE", incarnation: 1 });
      assert.equal(reports.length, 1);
      assert.deepEqual({ ...reports[0], started: 0 }, {
        id: ID,
        incarnation: 1,
        instance: "inst-1",
        started: 0,
      });
      assert.ok(reports[0]!.started > 0);
      assert.equal(service.state, "ALIVE");
      assert.ok(
        !seen.includes(`PUT /v1/registry/services/${ID}`),
        "the parent writes the ALIVE record, not the child",
      );
    } finally {
      await service.shutdown("test over");
      await parent.shutdown();
    }
  });
});

Deno.test("FabricService.configure() refuses another role with ConflictError and state FAILED, starting nothing", async () => {
  const role = fakeRole();
  const { service } = queueService(role.module);
  try {
    await assert.rejects(service.configure(configureRequest({ role: "pubsub" })), (error) => {
      assert.ok(error instanceof ConflictError);
      assert.match(error.message, /runs as queue, not pubsub/);
      return true;
    });
    assert.equal(service.state, "FAILED");
    assert.deepEqual(role.started, []);
  } finally {
    await service.shutdown("test over", "FAILED");
  }
});

Deno.test("FabricService.configure() answers ConflictError and exits 79 when the role cannot pick up its old state", async () => {
  await withRegistry(async ({ registry, url, seen }) => {
    const role = fakeRole(() => Promise.reject(new StateLostError("Queue store is gone")));
    const { service, app } = queueService(role.module);
    service.holdKeys(keys, [{ id: REGISTRY_ID, url }]);
    try {
      await assert.rejects(service.configure(configureRequest({ incarnation: 2 })), (error) => {
        assert.ok(error instanceof ConflictError, "not the StateLostError itself");
        assert.match(error.message, /Cannot pick up the old state: Queue store is gone/);
        return true;
      });
      assert.equal(service.exitCode, EXIT.STATE_LOST);
      assert.equal(service.state, "FAILED");
      assert.match(await within(service.stopRequested), /^state lost: Queue store is gone/);
      assert.equal((await app.request("/v1/queue/ping")).status, 404, "never mounted");
      assert.deepEqual(seen, [], "nothing registered");
      assert.equal(await registry.get(ID), undefined);
    } finally {
      await service.shutdown("state lost", "FAILED");
    }
  });
});

Deno.test("FabricService.shutdown() records STOPPED once, unmounts the role and stops it once, not urgently", async () => {
  await withRegistry(async ({ registry, url, seen }) => {
    const role = fakeRole();
    const { service, app } = queueService(role.module);
    service.holdKeys(keys, [{ id: REGISTRY_ID, url }]);
    await service.place(rootPlacement(url));
    await Promise.all([service.shutdown("stopped by request"), service.shutdown("again")]);
    await service.shutdown("and again");
    assert.equal(seen.filter((s) => s === TRANSITIONS).length, 1);
    const stored = await registry.get(ID);
    assert.equal(stored?.state, "STOPPED");
    const [last] = (await registry.history(ID)).slice(-1);
    assert.equal(last?.reason, "stopped by request");
    assert.deepEqual(role.stops, [{ urgent: false }]);
    assert.equal(service.state, "STOPPED");
    assert.equal((await app.request("/v1/queue/ping")).status, 503);
  });
});

Deno.test("FabricService.stop() asks for the stop after answering, and its grace reaches the role's stop", async () => {
  await withRegistry(async ({ url }) => {
    const role = fakeRole();
    const { service } = queueService(role.module);
    service.holdKeys(keys, [{ id: REGISTRY_ID, url }]);
    try {
      await service.place(rootPlacement(url));
      await service.stop("stopped by request", 1500);
      assert.equal(await within(service.stopRequested), "stopped by request");
      assert.equal(service.exitCode, EXIT.OK);
    } finally {
      await service.shutdown("stopped by request");
    }
    assert.deepEqual(role.stops, [{ urgent: false, graceMs: 1500 }]);
  });
});

Deno.test("FabricService stops urgently and writes nothing once the registry says its incarnation was replaced", async () => {
  await withRegistry(async ({ registry, url, seen }) => {
    const role = fakeRole();
    const { service } = queueService(role.module);
    service.holdKeys(keys, [{ id: REGISTRY_ID, url }]);
    try {
      await service.place(rootPlacement(url, { heartbeatMs: 20 }));
      await registry.transition(ID, {
        incarnation: 1,
        to: "DEAD",
        reason: "its parent saw the process end",
        exited: true,
      });
      assert.match(await within(service.stopRequested), /^replaced or cut off: .*DEAD/);
      assert.equal(service.exitCode, EXIT.FAILURE);
    } finally {
      await service.shutdown("replaced");
    }
    assert.deepEqual(role.stops, [{ urgent: true }]);
    assert.equal(seen.filter((s) => s === TRANSITIONS).length, 0);
    assert.equal((await registry.get(ID))?.state, "DEAD", "the successor's record is left alone");
  });
});

Deno.test("FabricService.openSession() is refused before placement, then records each session in the registry", async () => {
  await withRegistry(async ({ registry, url }) => {
    const { service } = queueService(fakeRole().module);
    service.holdKeys(keys, [{ id: REGISTRY_ID, url }]);
    try {
      await assert.rejects(async () => await service.openSession("early"), ConflictError);
      await service.place(rootPlacement(url));
      assert.deepEqual(await service.openSession("s2"), ["s1", "s2"]);
      assert.deepEqual((await registry.get(ID))?.sessions, ["s1", "s2"]);
      assert.deepEqual(await service.closeSession("s1"), ["s2"]);
      assert.deepEqual((await registry.get(ID))?.sessions, ["s2"]);
      assert.deepEqual(service.status().sessions, ["s2"]);
    } finally {
      await service.shutdown("test over");
    }
  });
});

Deno.test("FabricService.connect() opens a session it does not serve yet, once, and answers its placement", async () => {
  await withRegistry(async ({ registry, url, seen }) => {
    const { service } = queueService(fakeRole().module);
    service.holdKeys(keys, [{ id: REGISTRY_ID, url }]);
    try {
      await service.place(rootPlacement(url, { sessions: [] }));
      const answer = await service.connect({ session: "app-1", client: "cli" });
      assert.deepEqual(answer, {
        id: ID,
        role: "queue",
        state: "ALIVE",
        incarnation: 1,
        endpoint: ENDPOINT,
        sessions: ["app-1"],
      });
      await service.connect({ session: "app-1", client: "cli" });
      const opened = seen.filter((s) => s === `PUT /v1/registry/services/${ID}/sessions/app-1`);
      assert.equal(opened.length, 1);
      assert.deepEqual((await registry.get(ID))?.sessions, ["app-1"]);
    } finally {
      await service.shutdown("test over");
    }
  });
});
