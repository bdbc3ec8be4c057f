/**
 * `fabricd events -f` follows the change stream again when it breaks (the
 * registry restarted: "error reading a body from connection"), from the last
 * transition printed; a refusal is not retried.
 */
import assert from "node:assert/strict";
import { followEvents } from "../../src/cli/events.ts";
import { FabricRequestError } from "../../src/client/fabric_client.ts";
import type { RegistryClient } from "../../src/client/registry_client.ts";
import type { RegistryEvent, Transition } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";

function event(seq: number): RegistryEvent {
  const transition: Transition = {
    seq,
    id: "spw-00000001",
    incarnation: 1,
    from: "",
    to: "ALIVE",
    reason: "up",
    at: seq,
  };
  return { kind: "transition", seq, record: serviceRecord("spw-00000001"), transition };
}

Deno.test("followEvents() follows again after the stream breaks, from the last transition printed", async () => {
  const sinces: number[] = [];
  const stop = new AbortController();
  const registry = {
    watch(since: number, onEvent: (e: RegistryEvent) => void): Promise<void> {
      sinces.push(since);
      if (sinces.length === 1) {
        onEvent(event(1));
        onEvent(event(2));
        return Promise.reject(new TypeError("error reading a body from connection"));
      }
      onEvent(event(3));
      stop.abort();
      return Promise.resolve();
    },
  } as unknown as RegistryClient;
  const printed: number[] = [];
  await followEvents({ registry }, (t) => printed.push(t.seq), stop.signal);
  assert.deepEqual(sinces, [0, 2]);
  assert.deepEqual(printed, [1, 2, 3]);
});

Deno.test("followEvents() does not retry a refusal", async () => {
  let calls = 0;
  const registry = {
    watch(): Promise<void> {
      calls++;
      return Promise.reject(new FabricRequestError("Identity revoked", 401));
    },
  } as unknown as RegistryClient;
  await assert.rejects(followEvents({ registry }, () => {}), /revoked/);
  assert.equal(calls, 1);
});
