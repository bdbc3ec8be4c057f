/**
 * The `slurm://[partition][?advertise=HOST&bind=ADDR&wait=SECONDS]` launcher:
 * starts fabricd as a Slurm batch job from the host the spawner runs on (a
 * login or head node), follows it with `squeue`, cancels it with `scancel`.
 *
 * - The job runs the same image as the spawner: batch sites share the home
 *   or scratch file system between the head and compute nodes, so the
 *   image's path on this host is valid on the node (docs/slurm.md).
 * - Compute nodes reach the head node but not its loopback, where the spawner
 *   and the SSH-forwarded registries listen: `prepare()` opens TCP relays on
 *   `bind` (default 0.0.0.0) and tells the child to use `advertise` (default
 *   this host's name). The child listens on all addresses and is reached by
 *   its node's name.
 * - The one-time password reaches the job through the environment `sbatch`
 *   passes on (`--export` names it; the value is in neither argv nor a file),
 *   lives as long as the job may wait in the queue (`wait`, default 1 h, or
 *   the spawn's `queueWait` option), and is discarded by the spawner when the
 *   job ends before it bootstrapped.
 * @module
 */
import { join } from "../base/paths.ts";
import { log } from "../config/logging.ts";
import { selfCommand } from "../image/self_command.ts";
import type { RegistryEndpoint } from "../types/mod.ts";
import { type BatchJob, batchJobs } from "./batch_jobs.ts";
import type { ChildView, LaunchedProcess, Launcher, LaunchSpec } from "./launcher.ts";
import {
  jobScript,
  type JobStatus,
  parseExitCode,
  parseQueue,
  parseSubmitted,
  phaseOf,
  queueOf,
  runSlurm,
  SQUEUE_FORMAT,
} from "./_slurm_cli.ts";
import { walltimeMinutes } from "../types/walltime.ts";
import { startTcpRelay, type TcpRelay } from "./_tcp_relay.ts";
import { slurmUrlSettings } from "./slurm_url.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";

/** Options of {@linkcode SlurmLauncher}. */
export interface SlurmLauncherOptions {
  /** The spawner's state directory; job logs go to `<dir>/logs/<id>.log`. */
  dir: string;
  /** How often the followed jobs are polled, ms. Default 1000. */
  pollMs?: number;
  /**
   * The spawner's service ID. The relays' ports are kept under `dir` in its
   * name, so its next incarnation (restarted after a crash) listens on the
   * same ports and the jobs it left running reach it again. Default "spawner".
   */
  owner?: string;
}

/** Environment variables a job receives besides the bootstrap ones, when set here. */
const PASSED_ENV = ["PATH", "HOME", "DENO_DIR", "FABRIC_LOG_LEVEL", "TZ"];

interface FollowedJob {
  job: BatchJob;
  resolve: (code: number) => void;
}

/** Starts fabricd processes as Slurm batch jobs. */
export class SlurmLauncher implements Launcher {
  readonly url: string;
  #dir: string;
  #partition: string;
  #advertise: string;
  #bind: string;
  #waitMs: number;
  #pollMs: number;
  #owner: string;
  #relays = new Map<string, { relay: TcpRelay; target: string }>();
  /** Relay ports kept by an earlier incarnation; read at the first prepare. */
  #saved: Record<string, number> | undefined;
  /** The relay ports as last written to the ports file. */
  #written = "";
  #followed = new Map<string, FollowedJob>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #polling = false;
  #closed = false;

  /**
   * A launcher for `url`.
   * @throws {TypeError} when the URL or one of its parameters is malformed.
   */
  constructor(url: string, options: SlurmLauncherOptions) {
    const settings = slurmUrlSettings(url);
    this.url = url;
    this.#dir = options.dir;
    this.#partition = settings.partition;
    this.#advertise = settings.advertise ?? Deno.hostname();
    this.#bind = settings.bind;
    this.#waitMs = settings.waitMs;
    this.#pollMs = options.pollMs ?? 1000;
    this.#owner = options.owner ?? "spawner";
  }

  /**
   * Checks that Slurm's commands run here and relays the parent and the
   * registries to an address the compute nodes reach.
   * @throws {Error} when `sbatch` is missing or a relay cannot listen.
   */
  async prepare(parentUrl: string, registries: RegistryEndpoint[]): Promise<ChildView> {
    // Once per launcher: sbatch is there, and the ports an earlier incarnation kept.
    this.#saved ??= await runSlurm("sbatch", ["--version"]).then(
      () => this.#savedPorts(),
      (error) => {
        throw new Error(
          `cannot run sbatch on ${Deno.hostname()} (${(error as Error).message}): ` +
            "slurm:// runs on a host with Slurm's client commands (Debian: slurm-client)",
        );
      },
    );
    const saved = this.#saved;
    const view = {
      parentUrl: this.#relayed("parent", parentUrl, saved),
      registries: registries.map((r) => ({
        id: r.id,
        url: this.#relayed(`registry ${r.id}`, r.url, saved),
      })),
    };
    const ports = JSON.stringify(
      Object.fromEntries([...this.#relays].map(([key, r]) => [key, r.relay.port])),
    );
    if (ports !== this.#written) {
      await Deno.mkdir(join(this.#dir, "relays"), { recursive: true, mode: 0o700 });
      await Deno.writeTextFile(this.#portsFile(), ports + "\n");
      this.#written = ports;
    }
    return view;
  }

  /**
   * Follows the job that runs `serviceId`, submitted by an earlier
   * incarnation of this spawner (found by its job name), as if launched now.
   * @returns false when Slurm runs no such job.
   */
  async follow(serviceId: string): Promise<boolean> {
    const output = await runSlurm("squeue", [
      "--noheader",
      `--name=fabricd-${serviceId}`,
      `--format=${SQUEUE_FORMAT}`,
    ]).catch(() => "");
    const status = [...parseQueue(output).values()][0];
    if (!status) return false;
    this.#follow(serviceId, status, () => {});
    return true;
  }

  /** The spawn's `queueWait` option (seconds), else the URL's `wait`. */
  bootstrapWindowMs(spec: LaunchSpec): number {
    const wait = spec.options?.queueWait;
    return wait && /^\d+$/.test(wait) && Number(wait) > 0 ? Number(wait) * 1000 : this.#waitMs;
  }

  /**
   * Submits the job and starts following it.
   * @throws {Error} when the options are unusable or `sbatch` refuses the job.
   */
  async launch(spec: LaunchSpec): Promise<LaunchedProcess> {
    const cores = Number(spec.options?.cores ?? "1");
    if (!Number.isInteger(cores) || cores < 1) {
      throw new RangeError(
        `Invalid cores "${spec.options?.cores}": use a whole number of at least 1`,
      );
    }
    const walltime = spec.options?.walltime ? walltimeMinutes(spec.options.walltime) : 0;
    const logDir = join(this.#dir, "logs");
    await Deno.mkdir(logDir, { recursive: true, mode: 0o700 });
    const logFile = join(logDir, `${spec.id}.log`);
    const self = selfCommand();
    const script = jobScript({
      id: spec.id,
      partition: this.#partition,
      cores,
      walltimeMinutes: walltime,
      logFile,
      workdir: this.#dir,
      command: [
        self.executable,
        ...self.prefix,
        ...spec.args,
        "--dir",
        this.#dir,
        "--listen",
        "0.0.0.0:0",
      ],
      exportNames: [
        ...Object.keys(spec.env),
        ...PASSED_ENV.filter((name) => Deno.env.get(name) !== undefined),
      ],
    });
    const submitted = await runSlurm("sbatch", ["--parsable"], { stdin: script, env: spec.env });
    const jobId = parseSubmitted(submitted);
    let resolve!: (code: number) => void;
    const exited = new Promise<number>((r) => resolve = r);
    const followed = this.#follow(
      spec.id,
      { jobId, state: "PENDING", nodes: "", reason: "" },
      resolve,
    );
    return {
      pid: 0,
      host: this.#partition ? `slurm:${this.#partition}` : "slurm",
      logFile,
      exited,
      reach: (endpoint) => this.#reach(endpoint, followed.job),
      kill: (signal: Deno.Signal = "SIGTERM") => {
        const ends = signal === "SIGTERM" || signal === "SIGKILL";
        if (ends) this.#markKilled(followed.job, this.bootstrapWindowMs(spec));
        const args = ends ? [jobId] : ["--signal", signal.replace("SIG", ""), "--full", jobId];
        void runSlurm("scancel", args).catch((error) =>
          log("slurm").debug("Cannot signal job {job}: {error}", {
            job: jobId,
            error: String(error),
          })
        );
      },
      endReason: () => {
        const job = followed.job;
        if (job.phase !== "ended") return undefined;
        return `Slurm job ${job.jobId} ${job.state}${job.reason ? ` (${job.reason})` : ""}`;
      },
    };
  }

  /**
   * Notes that the spawner itself cancels `job` (`kill()`: no bootstrap within
   * `windowMs`, a failed configure), so its `CANCELLED` end is not taken for
   * an operator's `scancel` (docs/slurm.md).
   */
  #markKilled(job: BatchJob, windowMs: number): void {
    if (job.phase === "ended" || job.killed) return;
    const started = job.phase !== "queued";
    const pending = `${job.state}${job.reason ? `, ${job.reason}` : ""}`;
    job.killed = {
      started,
      why: started
        ? `cancelled by its spawner while ${job.state}${job.nodes ? ` on ${job.nodes}` : ""}`
        : `no bootstrap within ${windowMs} ms: the job did not start (${pending})`,
    };
    batchJobs.update(job);
  }

  /** Records a job in the batch table and polls it until it ends. */
  #follow(serviceId: string, status: JobStatus, resolve: (code: number) => void): FollowedJob {
    const now = Date.now();
    const followed: FollowedJob = {
      job: {
        serviceId,
        jobId: status.jobId,
        launcher: this.url,
        state: status.state,
        phase: phaseOf(status.state),
        nodes: status.nodes,
        reason: status.reason,
        exitCode: null,
        submitted: now,
        updated: now,
      },
      resolve,
    };
    this.#followed.set(status.jobId, followed);
    batchJobs.update(followed.job, () => this.#cancel(status.jobId));
    this.#schedulePoll(0);
    return followed;
  }

  /** Stops the relays and the polling; the jobs keep running. */
  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const { relay } of this.#relays.values()) relay.close();
    this.#relays.clear();
    return Promise.resolve();
  }

  /** The relay for `key` (the parent, a registry) to `url`, on its saved port if free. */
  #relayed(key: string, url: string, saved: Record<string, number>): string {
    const origin = new URL(url);
    let known = this.#relays.get(key);
    if (known && known.target !== origin.host) {
      known.relay.close();
      known = undefined;
    }
    if (!known) {
      const port = this.#relays.get(key)?.relay.port ?? saved[key];
      known = {
        relay: startTcpRelay({
          bind: this.#bind,
          ...(port ? { port } : {}),
          target: { host: origin.hostname, port: Number(origin.port || 80) },
        }),
        target: origin.host,
      };
      this.#relays.set(key, known);
    }
    return `${origin.protocol}//${this.#advertise}:${known.relay.port}`;
  }

  #portsFile(): string {
    const tag = `${this.#owner}-${this.url.replace(/[^A-Za-z0-9]+/g, "_")}`;
    return join(this.#dir, "relays", `${tag}.json`);
  }

  async #savedPorts(): Promise<Record<string, number>> {
    try {
      const saved = JSON.parse(await Deno.readTextFile(this.#portsFile()));
      return typeof saved === "object" && saved !== null ? saved : {};
    } catch {
      return {};
    }
  }

  async #reach(endpoint: string, job: BatchJob): Promise<string> {
    const url = new URL(endpoint);
    if (url.hostname !== "0.0.0.0") return endpoint;
    // The service may bootstrap before the next poll has seen its job run.
    if (!job.nodes) {
      const status = (await queueOf([job.jobId]))?.get(job.jobId);
      if (status) await this.#observe(job.jobId, status);
    }
    // A one-node job: Slurm names the node, which the head node can resolve.
    const node = job.nodes.split(",")[0];
    if (!node) throw new Error(`Slurm job ${job.jobId} reports no node`);
    url.hostname = node;
    return url.origin;
  }

  async #cancel(jobId: string): Promise<void> {
    await runSlurm("scancel", [jobId]);
  }

  #schedulePoll(delayMs: number): void {
    if (this.#closed || this.#polling) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#poll(), delayMs);
  }

  async #poll(): Promise<void> {
    if (this.#followed.size === 0) return;
    this.#polling = true;
    try {
      const ids = [...this.#followed.keys()];
      const seen = await queueOf(ids);
      // A failed squeue (slurmctld restarting) changes nothing; the next poll asks again.
      if (seen !== null) {
        for (const id of ids) await this.#observe(id, seen.get(id));
      }
    } finally {
      this.#polling = false;
      if (this.#followed.size > 0) this.#schedulePoll(this.#pollMs);
    }
  }

  async #observe(jobId: string, status: JobStatus | undefined): Promise<void> {
    const followed = this.#followed.get(jobId);
    if (!followed) return;
    const job = followed.job;
    // Gone from squeue: ended longer ago than the cluster's MinJobAge, or
    // forgotten by a slurmctld that lost its state; how it ended is unknown.
    const state = status?.state ?? "UNKNOWN";
    const phase = status ? phaseOf(state) : "ended";
    const changed = state !== job.state || (status?.nodes ?? job.nodes) !== job.nodes ||
      (status?.reason ?? job.reason) !== job.reason;
    if (!changed && phase !== "ended") return;
    job.state = state;
    job.phase = phase;
    job.nodes = status?.nodes || job.nodes;
    job.reason = status ? status.reason : "no longer known to Slurm";
    job.updated = Date.now();
    if (phase === "ended") {
      const detail = await runSlurm("scontrol", ["--oneliner", "show", "job", jobId]).catch(() =>
        ""
      );
      job.exitCode = parseExitCode(detail);
      this.#followed.delete(jobId);
      batchJobs.update(job);
      followed.resolve(job.exitCode);
      return;
    }
    batchJobs.update(job);
  }
}
