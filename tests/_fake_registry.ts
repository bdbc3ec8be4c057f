/**
 * An in-memory stand-in for {@linkcode RegistryClient}, for unit tests of the
 * parts that talk to the registry: records by ID, every call logged, and any
 * method made to fail on demand. It keeps no state machine: a transition is
 * refused only for an unknown ID or another incarnation, as the registry would.
 * @module
 */
import { FabricRequestError } from "../src/client/fabric_client.ts";
import type { RegistryClient } from "../src/client/registry_client.ts";
import type { RegistryEvent, ServiceRecord, ServiceState } from "../src/types/mod.ts";

/** The methods of the fake, by name. */
export type FakeMethod =
  | "list"
  | "get"
  | "put"
  | "transition"
  | "heartbeat"
  | "report"
  | "setSession"
  | "watch";

/** One call the fake received, with its arguments. */
export interface FakeCall {
  method: FakeMethod;
  args: unknown[];
}

/** A transition as the fake received it. */
export interface FakeTransition {
  id: string;
  incarnation: number;
  to: ServiceState;
  reason: string;
  exited?: boolean | undefined;
}

/** The fake and what a test reads or steers in it. */
export interface FakeRegistry {
  /** The fake, typed as the client the parts take. */
  client: RegistryClient;
  /** The records held, by ID; a test may change them. */
  records: Map<string, ServiceRecord>;
  /** Every call, in order. */
  calls: FakeCall[];
  /** Methods that reject with the error given, until removed (`watch` never fails). */
  failing: Map<FakeMethod, Error>;
  /** Answers a heartbeat; default: the record's state, or 404 when unknown. */
  onHeartbeat: (id: string, incarnation: number) => { state: ServiceState; incarnation: number };
  /** The calls of one method. */
  callsOf(method: FakeMethod): FakeCall[];
  /** The transitions received, in order. */
  transitions(): FakeTransition[];
}

/** A fake registry holding copies of `records`. */
export function fakeRegistry(records: ServiceRecord[] = []): FakeRegistry {
  const fake: FakeRegistry = {
    client: undefined as unknown as RegistryClient,
    records: new Map(records.map((r) => [r.id, structuredClone(r)])),
    calls: [],
    failing: new Map(),
    onHeartbeat: (id) => {
      const record = held(id);
      return { state: record.state, incarnation: record.incarnation };
    },
    callsOf: (method) => fake.calls.filter((c) => c.method === method),
    transitions: () => fake.callsOf("transition").map((c) => c.args[1] as FakeTransition),
  };
  const held = (id: string): ServiceRecord => {
    const record = fake.records.get(id);
    if (!record) throw new FabricRequestError(`No service "${id}" in the registry`, 404);
    return record;
  };
  /** Logs the call, then answers with `answer()` or the failure set for `method`. */
  const call = <T>(method: FakeMethod, args: unknown[], answer: () => T): Promise<T> => {
    fake.calls.push({ method, args: structuredClone(args) });
    try {
      const failure = fake.failing.get(method);
      if (failure) throw failure;
      return Promise.resolve(answer());
    } catch (error) {
      return Promise.reject(error);
    }
  };
  const client = {
    list: () => call("list", [], () => structuredClone([...fake.records.values()])),
    get: (id: string) =>
      call("get", [id], () => {
        const record = fake.records.get(id);
        return record ? { record: structuredClone(record), transitions: [] } : undefined;
      }),
    put: (record: ServiceRecord, reason: string) =>
      call("put", [record, reason], () => {
        fake.records.set(record.id, structuredClone(record));
        return structuredClone(record);
      }),
    transition: (id: string, change: Omit<FakeTransition, "id">) =>
      call("transition", [id, { id, ...change }], () => {
        const record = held(id);
        if (record.incarnation !== change.incarnation) {
          throw new FabricRequestError(
            `Service "${id}" is at incarnation ${record.incarnation}, not ${change.incarnation}`,
            409,
          );
        }
        record.state = change.to;
        record.exited = change.exited;
        record.updated += 1;
        if (change.to === "DEAD" || change.to === "FAILED") record.lastFailure = change.reason;
        return structuredClone(record);
      }),
    heartbeat: (id: string, incarnation: number, options: Record<string, unknown> = {}) =>
      call("heartbeat", [id, incarnation, options], () => fake.onHeartbeat(id, incarnation)),
    report: (id: string, incarnation: number, reason: string) =>
      call("report", [id, incarnation, reason], () => structuredClone(held(id))),
    setSession: (id: string, session: string, present: boolean) =>
      call("setSession", [id, session, present], () => {
        const record = held(id);
        const sessions = new Set(record.sessions);
        if (present) sessions.add(session);
        else sessions.delete(session);
        record.sessions = [...sessions].sort();
        return structuredClone(record);
      }),
    // A stream that stays open until the follower aborts (it never fails: a
    // follower retries a broken stream after a second, which would outlive a test).
    watch: (since: number, _onEvent: (event: RegistryEvent) => void, signal: AbortSignal) => {
      fake.calls.push({ method: "watch", args: [since] });
      return new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener("abort", () => resolve(), { once: true });
      });
    },
  };
  fake.client = client as unknown as RegistryClient;
  return fake;
}
