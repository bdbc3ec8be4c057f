import assert from "node:assert/strict";
import { Hono } from "hono";
import { TrieRouter } from "hono/router/trie-router";
import { HTTPException } from "hono/http-exception";
import { RoleSlot } from "../../src/api/role_slot.ts";

function appWith(slot: RoleSlot): Hono {
  const app = new Hono({ router: new TrieRouter() });
  app.use(slot.front);
  app.get("/v1/status", (c) => c.text("status"));
  slot.bind((routes) => app.route("/v1", routes));
  app.notFound((c) => c.text(slot.waiting ? "waiting" : "none", slot.waiting ? 503 : 404));
  app.onError((error, c) =>
    c.text(error.message, error instanceof HTTPException ? error.status : 500)
  );
  return app;
}

Deno.test("RoleSlot: a role's routes answer once mounted, 503 before and after, and common routes always", async () => {
  const slot = new RoleSlot();
  const app = appWith(slot);
  await app.request("/v1/status"); // the router has matched before the role mounts
  assert.equal((await app.request("/v1/queue/jobs")).status, 503);
  const routes = new Hono().get("/queue/:name", (c) => c.text(`queue ${c.req.param("name")}`));
  slot.mount({ routes });
  const answer = await app.request("/v1/queue/jobs");
  assert.equal(answer.status, 200);
  assert.equal(await answer.text(), "queue jobs");
  assert.equal((await app.request("/v1/nothing")).status, 404);
  slot.unmount();
  assert.equal((await app.request("/v1/queue/jobs")).status, 503);
  assert.equal(await (await app.request("/v1/status")).text(), "status");
});

Deno.test("RoleSlot: the front runs first only while the role is mounted, and a second mount is refused", async () => {
  const slot = new RoleSlot();
  const app = appWith(slot);
  slot.mount({ front: (c) => Promise.resolve(c.text("relayed", 202)) });
  assert.equal((await app.request("/v1/status")).status, 202);
  assert.throws(() => slot.mount({}), /already mounted/);
  slot.unmount();
  assert.equal((await app.request("/v1/status")).status, 200);
});
