import assert from "node:assert/strict";
import { FabricRequestError } from "../../src/client/fabric_client.ts";
import type { RegistryClient } from "../../src/client/registry_client.ts";
import { startHeartbeats } from "../../src/health/heartbeat.ts";
import { eventually } from "../_eventually.ts";

/** A registry whose heartbeat answers wait until the test settles them. */
function heldRegistry(): {
  registry: RegistryClient;
  pending: PromiseWithResolvers<Record<string, never>>[];
} {
  const pending: PromiseWithResolvers<Record<string, never>>[] = [];
  const registry = {
    heartbeat: () => {
      const beat = Promise.withResolvers<Record<string, never>>();
      pending.push(beat);
      return beat.promise;
    },
  } as unknown as RegistryClient;
  return { registry, pending };
}

Deno.test("a heartbeat refused with 409 reports the service replaced", async () => {
  const { registry, pending } = heldRegistry();
  const replaced: string[] = [];
  const beats = startHeartbeats(registry, { id: "reg-00000001", incarnation: 1 }, {
    intervalMs: 10,
    onReplaced: (reason) => replaced.push(reason),
  });
  try {
    await eventually(() => pending.length === 1, { timeoutMs: 2000 });
    pending[0]!.reject(new FabricRequestError("record is STOPPED", 409));
    await eventually(() => replaced.length === 1, { timeoutMs: 2000 });
    assert.match(replaced[0]!, /STOPPED/);
  } finally {
    beats.stop();
  }
});

// The race behind a registry that `fabricd up` started again after `fabricd
// stop --all`: the stop wrote STOPPED while a beat was in flight, the beat came
// back 409, and the service took it for a replacement and exited 1.
Deno.test("a heartbeat in flight when the loop is stopped reports nothing, even a 409", async () => {
  const { registry, pending } = heldRegistry();
  const replaced: string[] = [];
  const beats = startHeartbeats(registry, { id: "reg-00000001", incarnation: 1 }, {
    intervalMs: 10,
    fenceMs: 0,
    onReplaced: (reason) => replaced.push(reason),
  });
  await eventually(() => pending.length === 1, { timeoutMs: 2000 });
  beats.stop();
  pending[0]!.reject(new FabricRequestError("record is STOPPED", 409));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(replaced, []);
  assert.equal(pending.length, 1, "no beat after stop()");
});

Deno.test("a heartbeat whose connection closes at once is sent again at once, and nothing is reported", async () => {
  const { registry, pending } = heldRegistry();
  const replaced: string[] = [];
  const answers: unknown[] = [];
  const beats = startHeartbeats(registry, { id: "reg-00000001", incarnation: 1 }, {
    intervalMs: 2000,
    fenceMs: 0,
    onReplaced: (reason) => replaced.push(reason),
    onAnswer: (answer) => answers.push(answer),
  });
  try {
    // The first beat comes after about one interval.
    await eventually(() => pending.length === 1, { timeoutMs: 10_000 });
    pending[0]!.reject(new FabricRequestError('Cannot reach service "reg-00000001"', 0));
    await eventually(() => pending.length === 2, { timeoutMs: 2000 });
    pending[1]!.resolve({});
    await eventually(() => answers.length === 1, { timeoutMs: 2000 });
    assert.deepEqual(replaced, [], "fenced after one closed connection");
  } finally {
    beats.stop();
  }
});
