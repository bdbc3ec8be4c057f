/**
 * A root of `fabricd up` whose freshly picked port is taken before it binds
 * it (an outgoing connection's ephemeral port, say) starts again on another
 * port, and every command line that names it follows.
 */
import assert from "node:assert/strict";
import { _startOnSomePort } from "../../src/cli/local_fabric.ts";
import type { Root, RootKeeper } from "../../src/cli/_root_keeper.ts";

function roots(): { registry: Root; spawner: Root } {
  return {
    registry: {
      id: "reg-00000001",
      url: "http://127.0.0.1:40001",
      args: ["--role", "registry", "--listen", "127.0.0.1:40001"],
    },
    spawner: {
      id: "spw-00000001",
      url: "http://127.0.0.1:40002",
      args: [
        "--role",
        "spawner",
        "--listen",
        "127.0.0.1:40002",
        "--registry",
        "reg-00000001@http://127.0.0.1:40001",
      ],
    },
  };
}

/** A keeper whose first `fails` starts end as a port already in use. */
function keeper(
  fails: number,
  message = 'Cannot listen on "127.0.0.1":40001: "AddrInUse: Address already in use (os error 98)"',
) {
  const started: string[][] = [];
  return {
    started,
    keeper: {
      start: (root: Root) => {
        started.push([...root.args]);
        return started.length <= fails ? Promise.reject(new Error(message)) : Promise.resolve();
      },
    } as unknown as RootKeeper,
  };
}

Deno.test("_startOnSomePort() moves a fresh root whose port was taken, and what names it follows", async () => {
  const { registry, spawner } = roots();
  const targets = [{ id: registry.id, url: registry.url }];
  const { keeper: k, started } = keeper(1);
  await _startOnSomePort(k, registry, { roots: [registry, spawner], registryTargets: targets });
  assert.equal(started.length, 2);
  assert.notEqual(registry.url, "http://127.0.0.1:40001");
  const moved = registry.url.slice("http://".length);
  assert.deepEqual(started[1], ["--role", "registry", "--listen", moved]);
  assert.equal(targets[0]!.url, registry.url);
  assert.ok(spawner.args.includes(`reg-00000001@${registry.url}`), spawner.args.join(" "));
  assert.ok(spawner.args.includes("127.0.0.1:40002"), "the spawner's own port stays");
});

Deno.test("_startOnSomePort() keeps a port that was kept or given, and gives up after three tries", async () => {
  const kept = keeper(1);
  const { registry } = roots();
  await assert.rejects(
    () => _startOnSomePort(kept.keeper, registry, null),
    /Address already in use/,
  );
  assert.equal(kept.started.length, 1, "a kept port is not moved");
  const busy = keeper(5);
  const fresh = roots();
  await assert.rejects(
    () =>
      _startOnSomePort(busy.keeper, fresh.registry, {
        roots: [fresh.registry],
        registryTargets: [],
      }),
    /Address already in use/,
  );
  assert.equal(busy.started.length, 3);
  const other = keeper(1, "Service exited with code 79 while starting");
  const third = roots();
  await assert.rejects(
    () =>
      _startOnSomePort(other.keeper, third.registry, {
        roots: [third.registry],
        registryTargets: [],
      }),
    /code 79/,
  );
  assert.equal(other.started.length, 1, "only a taken port is tried again");
});
