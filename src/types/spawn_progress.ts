/**
 * The steps of a spawn as a client may watch them: the `progress` events of
 * a streamed `POST /v1/spawn` (docs/protocol.md 5.2).
 * @module
 */

/** The steps of a spawn, in the order they come. */
export const SPAWN_STEPS = ["prepare", "copy", "launch", "bootstrap", "configure"] as const;

/** One step of a spawn. */
export type SpawnStep = typeof SPAWN_STEPS[number];

/**
 * One report of a spawn's progress: `prepare` (the launcher reaches its
 * target: an SSH connection), `copy` (the image travels to the host; `bytes`
 * of `total` arrived), `launch`, `bootstrap` (waiting for the key hand-over),
 * `configure`.
 */
export interface SpawnProgress {
  step: SpawnStep;
  /** What the step works on: the launcher URL, the service ID, the endpoint. */
  detail?: string;
  /** With `copy`: bytes arrived so far. */
  bytes?: number;
  /** With `copy`: bytes to copy in all. */
  total?: number;
}

/** Receives a spawn's progress; must not throw (a spawn does not wait for it). */
export type SpawnProgressListener = (progress: SpawnProgress) => void;
