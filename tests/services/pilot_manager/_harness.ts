/** A pilot manager over fakes, for the pilot manager's unit tests. */
import type { SpawnRequest } from "../../../src/types/wire.ts";
import type { BatchJob } from "../../../src/launchers/batch_jobs.ts";
import type { SpawnHooks } from "../../../src/runtime/role.ts";
import { PilotManager, type PilotRequest } from "../../../src/services/pilot_manager/pilots.ts";
import type { ServiceState, SpawnResult } from "../../../src/types/mod.ts";
import { serviceRecord } from "../../_fixtures.ts";

/** A pilot manager over fakes: spawns are recorded and settled by the test. */
export function harness() {
  const spawns: {
    request: SpawnRequest;
    id: string;
    settle: (ok: boolean, message?: string) => void;
  }[] = [];
  const states = new Map<string, ServiceState>();
  const jobs = new Map<string, BatchJob>();
  const listeners = new Set<(job: BatchJob) => void>();
  const cancelled: string[] = [];
  const stopped: string[] = [];
  const transitions: { id: string; to: ServiceState; reason: string }[] = [];
  let next = 1;
  const job = (
    id: string,
    state: string,
    phase: BatchJob["phase"],
    extra: Partial<BatchJob> = {},
  ): void => {
    const value: BatchJob = {
      serviceId: id,
      jobId: "7",
      launcher: "slurm://compute",
      state,
      phase,
      nodes: phase === "queued" ? "" : "compute1",
      reason: "",
      exitCode: phase === "ended" ? 0 : null,
      submitted: 0,
      updated: 0,
      ...extra,
    };
    jobs.set(id, value);
    for (const listener of listeners) listener(value);
  };
  const manager = new PilotManager({
    selfId: "plm-11111111",
    spawn(request: SpawnRequest, hooks?: SpawnHooks): Promise<SpawnResult> {
      const id = request.restart ?? `agt-${String(next++).padStart(8, "0")}`;
      hooks?.onRecorded?.({ id, incarnation: 1 });
      states.set(id, "LAUNCHING");
      // A batch launcher has the job by the time launch() returns.
      if (request.on.startsWith("slurm://")) job(id, "PENDING", "queued");
      return new Promise((resolve, reject) => {
        spawns.push({
          request,
          id,
          settle: (ok, message) => {
            if (ok) {
              states.set(id, "ALIVE");
              resolve({ id, endpoint: "http://compute1:1", state: "ALIVE" });
            } else {
              // As the spawn flow records it: a failed restart is DEAD, a failed spawn FAILED.
              states.set(id, request.restart ? "DEAD" : "FAILED");
              reject(new Error(message ?? "failed"));
            }
          },
        });
      });
    },
    stopService: (id) => {
      stopped.push(id);
      return Promise.resolve();
    },
    transition: (id, change) => {
      transitions.push({ id, to: change.to, reason: change.reason });
      states.set(id, change.to);
      return Promise.resolve();
    },
    record: (id) => {
      const state = states.get(id);
      if (id.endsWith("missing")) return Promise.resolve(undefined);
      if (id.startsWith("que-") || id.startsWith("pub-")) {
        const route = id.endsWith("elsewhere") ? ["spw-1"] : ["spw-1", "plm-11111111", id];
        return Promise.resolve(serviceRecord(id, { role: "queue", route }));
      }
      return Promise.resolve(
        state ? serviceRecord(id, { role: "agent", state }) : undefined,
      );
    },
    batch: {
      get: (id) => jobs.get(id),
      cancel: (id) => {
        cancelled.push(id);
        return Promise.resolve(true);
      },
      follow: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    },
    maxResubmits: 1,
  });
  return { manager, spawns, states, job, cancelled, stopped, transitions };
}

export const REQUEST: PilotRequest = {
  on: "slurm://compute",
  count: 2,
  cores: 2,
  walltime: "10",
  queue: "que-11111111",
  pubsub: "pub-11111111",
  queueName: "",
  policy: "resubmit",
  sessions: [],
};

// The fakes answer at once (no I/O, no timers), so one timer turn lets every promise chain
// of the manager run; some checks after it are that nothing more happened.
export const settled = () => new Promise((r) => setTimeout(r, 10));
