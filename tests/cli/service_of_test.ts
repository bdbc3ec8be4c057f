/**
 * `serviceOf()` without an ID: when services of the role exist but none is
 * ALIVE, it names them with their state and last failure instead of telling
 * the user to spawn a new one (a new queue starts empty: its tasks are elsewhere).
 */
import assert from "node:assert/strict";
import { serviceOf } from "../../src/cli/_service_of.ts";
import { CliError } from "../../src/cli/cli_error.ts";
import type { FabricContext } from "../../src/cli/context.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";

/** A context whose registry lists `records` (all `serviceOf` reads). */
function contextOf(records: ServiceRecord[]): FabricContext {
  return { registry: { list: () => Promise.resolve(records) } } as unknown as FabricContext;
}

async function messageOf(records: ServiceRecord[]): Promise<string> {
  const error = await serviceOf(contextOf(records), "queue", undefined).then(
    () => assert.fail("no error"),
    (error: unknown) => error,
  );
  assert.ok(error instanceof CliError, String(error));
  assert.equal(error.exitCode, 1);
  return error.message;
}

const ROOT = serviceRecord("spw-00000001");

Deno.test("serviceOf() names a queue that is DEAD or restarting, with its last failure, rather than advise a new one", async () => {
  const message = await messageOf([
    ROOT,
    serviceRecord("que-0000abcd", {
      role: "queue",
      state: "RESTARTING",
      lastFailure: "exited with code 1\n(signal SIGKILL)",
    }),
  ]);
  assert.match(
    message,
    /^No queue service is ALIVE: "que-0000abcd" is RESTARTING \(last failure: exited with code 1 \(signal SIGKILL\)\): wait until it is ALIVE/,
  );
  assert.match(message, /"fabricd status --role queue"/);
  assert.doesNotMatch(message, /fabricd spawn/);
});

Deno.test("serviceOf() names at most five waiting queues and leaves ended ones out while one may come back", async () => {
  const dead = Array.from(
    { length: 7 },
    (_, i) => serviceRecord(`que-0000000${i}`, { role: "queue", state: "DEAD" }),
  );
  const lost = serviceRecord("que-000000ff", { role: "queue", state: "LOST" });
  const message = await messageOf([ROOT, lost, ...dead]);
  assert.match(message, /"que-00000004" is DEAD and 2 more: wait until one is ALIVE/);
  assert.doesNotMatch(message, /que-000000ff|que-00000005/);
});

Deno.test("serviceOf() names ended queues and advises a new one only when every queue has ended", async () => {
  const message = await messageOf([
    ROOT,
    serviceRecord("que-000000ff", { role: "queue", state: "LOST", lastFailure: "state lost" }),
  ]);
  assert.equal(
    message,
    'No queue service is ALIVE: "que-000000ff" is LOST (last failure: state lost): start one with "fabricd spawn --role queue"',
  );
  assert.match(
    await messageOf([ROOT]),
    /^No queue service in the fabric: start one with "fabricd spawn --role queue"$/,
  );
});
