/**
 * What a restarted pilot manager learns of a pilot that an earlier
 * incarnation submitted, from its agent's registry record and transitions:
 * whether it still runs (or is about to: a `DEAD` agent is restarted by the
 * manager's supervisor) or how it ended, when it was submitted and since when
 * its walltime runs (docs/services.md "## pilot-manager").
 * @module
 */
import type { ServiceRecord, Transition } from "../../types/mod.ts";
import { ENDED_STATES } from "../../registry/state_machine.ts";
import type { PilotPolicy, PilotRequest, PilotState } from "./_pilot_types.ts";

/** A pilot as its agent's record and transitions tell it. */
export interface Takeover {
  /** `RUNNING` while its agent runs or is started again, else how it ended. */
  state: PilotState;
  reason: string;
  /** When it was first submitted, ms since the epoch. */
  submitted: number;
  /**
   * When its walltime started: its agent's first `ALIVE` after its latest
   * submission (a supervisor's restart of a `DEAD` agent keeps it); the
   * takeover's `now` when the agent has not been `ALIVE` since.
   */
  walltimeFrom: number;
  /** When it ended (its record's last change); 0 while it runs. */
  endedAt: number;
  /** Times it was resubmitted under its ID (restarts from `STOPPED` or `FAILED`). */
  resubmits: number;
}

/** The reason `pilot cancel` gives the agent it stops. */
export const CANCEL_REASON = "pilot cancelled";

/**
 * The pilot of agent `record` with its `transitions` (oldest first), taken
 * over at `now`. A resubmission (a restart from `STOPPED` or `FAILED`) gives
 * the pilot a new walltime; a restart from `DEAD` or `SUSPECT` does not.
 */
export function takeoverOf(
  record: ServiceRecord,
  transitions: readonly Transition[],
  now: number = Date.now(),
): Takeover {
  let walltimeFrom: number | undefined;
  let resubmits = 0;
  for (const t of transitions) {
    if (t.to === "ALIVE" && walltimeFrom === undefined) walltimeFrom = t.at;
    if (t.to === "RESTARTING" && (t.from === "STOPPED" || t.from === "FAILED")) {
      walltimeFrom = undefined;
      resubmits++;
    }
  }
  const submitted = transitions[0]?.at ?? record.started;
  const base = { submitted, walltimeFrom: walltimeFrom ?? now, resubmits };
  if (!ENDED_STATES.includes(record.state)) {
    const reason = `taken over after the pilot manager restarted (agent ${record.state})`;
    return { ...base, state: "RUNNING", reason, endedAt: 0 };
  }
  const ended = { ...base, endedAt: record.updated };
  const why = record.lastFailure ? `: ${record.lastFailure}` : "";
  if (record.state !== "STOPPED") {
    return { ...ended, state: "FAILED", reason: `agent ${record.state}${why}` };
  }
  const last = transitions.at(-1);
  const stopReason = last?.to === "STOPPED" ? last.reason : "";
  if (stopReason === CANCEL_REASON) {
    return { ...ended, state: "CANCELED", reason: "cancelled by the fabric" };
  }
  const reason = /^walltime .* reached$/.test(stopReason)
    ? "walltime reached"
    : `agent stopped${stopReason ? `: ${stopReason}` : ""}`;
  return { ...ended, state: "ENDED", reason };
}

/** The request a pilot was submitted with, as its agent's record keeps it. */
export function takenRequest(record: ServiceRecord, policy: PilotPolicy): PilotRequest {
  const options = record.options ?? {};
  return {
    on: record.launcher,
    count: 1,
    cores: Number(options.cores ?? "1"),
    walltime: options.walltime ?? "",
    queue: options.queue ?? "",
    pubsub: options.pubsub ?? "",
    queueName: options.queueName ?? "",
    policy,
    sessions: record.sessions,
  };
}
