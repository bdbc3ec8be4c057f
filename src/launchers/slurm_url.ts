/**
 * The grammar of a `slurm://` launcher URL (docs/slurm.md): its partition and
 * parameters, checked without touching Slurm or the network, so a malformed
 * one is refused where it is first given (`spawn --on`, `pilot submit --on`)
 * with the words the launcher would use.
 * @module
 */

/** Seconds a job may wait in the queue unless the URL's `wait` says otherwise. */
export const DEFAULT_WAIT_S = 3600;

/** What a `slurm://` URL says, checked: see {@linkcode slurmUrlSettings}. */
export interface SlurmUrlSettings {
  /** The partition, or "" for the cluster's default. */
  partition: string;
  /** The name compute nodes use for this host; undefined for this host's own name. */
  advertise: string | undefined;
  /** The address the relays listen on. */
  bind: string;
  /** How long a job may wait in the queue, ms. */
  waitMs: number;
}

/**
 * The settings of `slurm://[partition][?advertise=HOST&bind=ADDRESS&wait=SECONDS]`,
 * read without touching anything: the launcher's own check, also made by
 * `pilot submit --on` before it sends a request.
 * @throws {TypeError} when the URL or one of its parameters is malformed.
 */
export function slurmUrlSettings(url: string): SlurmUrlSettings {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`Invalid launcher "${url}": use slurm://[partition]`);
  }
  if (parsed.pathname !== "" && parsed.pathname !== "/") {
    throw new TypeError(`Invalid launcher "${url}": use slurm://[partition], without a path`);
  }
  const known = new Set(["advertise", "bind", "wait"]);
  for (const key of parsed.searchParams.keys()) {
    if (!known.has(key)) {
      throw new TypeError(
        `Invalid launcher "${url}": unknown parameter "${key}" (use advertise, bind, wait)`,
      );
    }
  }
  const wait = parsed.searchParams.get("wait") ?? String(DEFAULT_WAIT_S);
  if (!/^\d{1,9}$/.test(wait) || Number(wait) <= 0) {
    throw new TypeError(`Invalid launcher "${url}": wait must be a number of seconds`);
  }
  return {
    partition: parsed.hostname,
    advertise: parsed.searchParams.get("advertise") ?? undefined,
    bind: parsed.searchParams.get("bind") ?? "0.0.0.0",
    waitMs: Number(wait) * 1000,
  };
}
