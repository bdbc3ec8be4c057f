/**
 * What the pilot manager reads and writes of its agents' registry records:
 * a record read without failing, the state an agent settles in once it no
 * longer runs, and the end a pilot leaves on its agent. A pilot that ended
 * leaves its agent `FAILED` (or `STOPPED` when cancelled), never `DEAD`, so
 * no supervisor restarts it and a restarted manager takes it over as ended
 * (_takeover.ts).
 * @module
 */
import { log } from "../../config/logging.ts";
import { sleep } from "../../config/retry.ts";
import type { ServiceRecord, ServiceState } from "../../types/mod.ts";
import type { PilotDeps, PilotState } from "./_pilot_types.ts";
import { CANCEL_REASON } from "./_takeover.ts";
import { LIVE_STATES, RUNNING_STATES } from "../../registry/state_machine.ts";

/** A pilot's agent record, or undefined when it cannot be read (logged). */
export function agentRecord(deps: PilotDeps, id: string): Promise<ServiceRecord | undefined> {
  return deps.record(id).catch((error) => {
    log("pilot-manager").debug("Cannot read the record of pilot {id}: {error}", {
      id,
      error: String(error),
    });
    return undefined;
  });
}

/**
 * The agent's record once it no longer runs or starts (it, or the spawn that
 * failed, records its end), looked at for about 5 s; undefined when it still
 * runs or cannot be read.
 */
export async function settledAgent(
  deps: PilotDeps,
  id: string,
): Promise<ServiceRecord | undefined> {
  for (let i = 0; i < 20; i++) {
    const record = await agentRecord(deps, id);
    if (record && !RUNNING_STATES.includes(record.state)) return record;
    await sleep(250);
  }
  return undefined;
}

/**
 * Whether a pilot's agent is down, to be resubmitted: `STOPPED` (its
 * walltime), `FAILED` (it never bootstrapped), or `DEAD` (a resubmission
 * that failed, a job that ended under it), which is recorded `FAILED` with
 * `reason` first, so that no supervisor restarts it and a takeover counts
 * the resubmission. False while it runs, and when someone else moved it on
 * meanwhile (a supervisor's restart, followed as it comes).
 */
export async function agentDown(deps: PilotDeps, id: string, reason: string): Promise<boolean> {
  const record = await settledAgent(deps, id) ?? await deadAgent(deps, id, reason);
  if (!record || !["STOPPED", "FAILED", "DEAD"].includes(record.state)) return false;
  if (record.state !== "DEAD") return true;
  return await deps.transition(id, { incarnation: record.incarnation, to: "FAILED", reason })
    .then(() => true, () => false);
}

/**
 * The agent of a pilot whose job or start ended, still `ALIVE` or `SUSPECT`
 * on record (its silence is shorter than the TTL yet): its process ended with
 * the job, so it is recorded `DEAD` with `reason` (as a parent records a
 * child whose process it saw exit). Undefined when it is in another state.
 */
async function deadAgent(
  deps: PilotDeps,
  id: string,
  reason: string,
): Promise<ServiceRecord | undefined> {
  const record = await agentRecord(deps, id);
  if (!record || !LIVE_STATES.includes(record.state)) return undefined;
  const change = { incarnation: record.incarnation, to: "DEAD" as const, reason };
  return await deps.transition(id, change).then(
    () => ({ ...record, state: "DEAD" as const }),
    () => undefined,
  );
}

/**
 * Leaves the agent of a pilot that ended in `state` where no one restarts
 * it: a `DEAD` agent is recorded `FAILED` with `reason`, and the agent of a
 * cancelled pilot `STOPPED` (with the reason `pilot cancel` gives, which a
 * takeover reads as `CANCELED`), once a spawn under way has recorded its
 * end. An agent that runs, or ended so already, is left as it is.
 */
export async function retireAgent(
  deps: PilotDeps,
  id: string,
  end: { state: PilotState; reason: string },
): Promise<void> {
  const record = await settledAgent(deps, id);
  if (!record) return;
  const cancelled = end.state === "CANCELED";
  const to: ServiceState | undefined = record.state === "DEAD"
    ? cancelled ? "STOPPED" : "FAILED"
    : record.state === "FAILED" && cancelled
    ? "STOPPED"
    : undefined;
  if (!to) return;
  const reason = cancelled ? CANCEL_REASON : `pilot ${end.state}: ${end.reason}`;
  await deps.transition(id, { incarnation: record.incarnation, to, reason }).catch((error) =>
    log("pilot-manager").warn("Cannot record the agent of pilot {id} {to}: {error}", {
      id,
      to,
      error: String(error),
    })
  );
}
