/**
 * Slurm's own commands, as the `slurm://` launcher uses them: the job script,
 * `sbatch --parsable`, one `squeue` for every followed job, `scontrol show job`
 * for the exit code, `scancel`, and how they are run. Parsing is kept apart
 * from running so it is tested without a cluster.
 * @module
 */
import type { BatchPhase } from "./batch_jobs.ts";

/** What one job asks of Slurm. */
export interface JobRequest {
  /** Service ID; the job is named `fabricd-ID`. */
  id: string;
  /** Partition, or "" for the cluster's default. */
  partition: string;
  /** Cores for the one task. */
  cores: number;
  /** Walltime in minutes, or 0 for the partition's default. */
  walltimeMinutes: number;
  /** Where the job's standard output and error go (appended). */
  logFile: string;
  /** Working directory of the job. */
  workdir: string;
  /** The command line to run, already split into words. */
  command: string[];
  /** Names (not values) of the environment variables the job receives. */
  exportNames: string[];
}

/** One line of `squeue`: a job's state, nodes and reason. */
export interface JobStatus {
  jobId: string;
  state: string;
  nodes: string;
  reason: string;
}

const QUEUED = new Set([
  "PENDING",
  "CONFIGURING",
  "REQUEUED",
  "REQUEUE_FED",
  "REQUEUE_HOLD",
  "RESIZING",
  "SUSPENDED",
  "STOPPED",
]);
const RUNNING = new Set(["RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT"]);

/** The fabric's phase of a Slurm job state (`squeue %T`); unknown states count as queued. */
export function phaseOf(state: string): BatchPhase {
  if (RUNNING.has(state)) return "running";
  if (QUEUED.has(state)) return "queued";
  return [
      "COMPLETED",
      "CANCELLED",
      "FAILED",
      "TIMEOUT",
      "NODE_FAIL",
      "PREEMPTED",
      "OUT_OF_MEMORY",
      "BOOT_FAIL",
      "DEADLINE",
      "SPECIAL_EXIT",
      "REVOKED",
    ].includes(state)
    ? "ended"
    : "queued";
}

/**
 * The batch script for `request`. Secrets never appear in it: the job gets
 * the one-time password through the environment that `sbatch` passes on
 * (`--export` names the variables, their values stay out of argv and files),
 * and the script moves it to fabricd's standard input before it execs.
 */
export function jobScript(request: JobRequest): string {
  const lines = [
    "#!/bin/sh",
    `#SBATCH --job-name=${shellWord(`fabricd-${request.id}`)}`,
    `#SBATCH --output=${shellWord(request.logFile)}`,
    "#SBATCH --open-mode=append",
    `#SBATCH --chdir=${shellWord(request.workdir)}`,
    "#SBATCH --nodes=1",
    "#SBATCH --ntasks=1",
    `#SBATCH --cpus-per-task=${request.cores}`,
    `#SBATCH --export=${request.exportNames.join(",")}`,
    // The fabric restarts its services itself (a new password, the next
    // incarnation); a requeued job would come back with a spent password.
    "#SBATCH --no-requeue",
    ...(request.partition ? [`#SBATCH --partition=${shellWord(request.partition)}`] : []),
    // At the walltime Slurm sends SIGTERM, on which a fabric service records
    // STOPPED and exits, then SIGKILL after the cluster's KillWait.
    ...(request.walltimeMinutes > 0 ? [`#SBATCH --time=${request.walltimeMinutes}`] : []),
    // The password reaches the job in its environment (Slurm's only channel);
    // fabricd gets it on standard input and without it in its own environment,
    // so /proc/PID/environ of the service never shows it.
    "otp=$FABRIC_OTP",
    "unset FABRIC_OTP",
    `exec ${request.command.map(shellWord).join(" ")} <<FABRIC_OTP_END`,
    "$otp",
    "FABRIC_OTP_END",
    "",
  ];
  return lines.join("\n");
}

/**
 * The job ID from `sbatch --parsable` output (`ID` or `ID;cluster`).
 * @throws {SyntaxError} when the output holds no job ID.
 */
export function parseSubmitted(output: string): string {
  const id = /^(\d+)(;\S+)?$/m.exec(output.trim())?.[1];
  if (!id) throw new SyntaxError(`sbatch printed no job ID: "${output.trim()}"`);
  return id;
}

/** The squeue format that {@linkcode parseQueue} reads. */
export const SQUEUE_FORMAT = "%i|%T|%N|%r";

/** Lines of `squeue -h -o "%i|%T|%N|%r"`, by job ID. */
export function parseQueue(output: string): Map<string, JobStatus> {
  const found = new Map<string, JobStatus>();
  for (const line of output.split("\n")) {
    const [jobId, state, nodes, reason] = line.trim().split("|");
    if (!jobId || !state || !/^\d+$/.test(jobId)) continue;
    found.set(jobId, {
      jobId,
      state,
      nodes: nodes ?? "",
      reason: reason === "None" ? "" : reason ?? "",
    });
  }
  return found;
}

/**
 * The exit code from `scontrol show job -o ID` (`ExitCode=CODE:SIGNAL`):
 * 128 + SIGNAL when a signal ended it, else CODE; -1 when absent.
 */
export function parseExitCode(output: string): number {
  const match = /\bExitCode=(\d+):(\d+)/.exec(output);
  if (!match) return -1;
  const [code, signal] = [Number(match[1]), Number(match[2])];
  return signal > 0 ? 128 + signal : code;
}

function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'"'"'`)}'`;
}

/**
 * The jobs among `ids` that `squeue` knows, or null when it could not answer.
 * One call for all; squeue refuses a list in which it knows no job, so a
 * refusal for that reason means none is known.
 */
export async function queueOf(ids: string[]): Promise<Map<string, JobStatus> | null> {
  try {
    return parseQueue(
      await runSlurm("squeue", [
        "--noheader",
        "--states=all",
        `--jobs=${ids.join(",")}`,
        `--format=${SQUEUE_FORMAT}`,
      ]),
    );
  } catch (error) {
    return /Invalid job id/i.test((error as Error).message) ? new Map() : null;
  }
}

/** Environment variables of sbatch's own that would override the job script. */
const SLURM_INPUT = /^(SBATCH|SLURM)_/;

/**
 * Runs a Slurm command and returns its standard output. Variables that
 * Slurm's commands read as options (`SBATCH_*`, `SLURM_*`: a spawner inside a
 * job has them) are left out, so the script's own directives hold.
 * @throws {Error} with the command's own message when it fails.
 */
export async function runSlurm(
  program: string,
  args: string[],
  options: { stdin?: string; env?: Record<string, string> } = {},
): Promise<string> {
  const env = Object.fromEntries(
    Object.entries({ ...Deno.env.toObject(), ...options.env }).filter(([name]) =>
      !SLURM_INPUT.test(name)
    ),
  );
  const child = new Deno.Command(program, {
    args,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env,
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const { code, stdout, stderr } = await child.output();
  if (code !== 0) {
    const said = new TextDecoder().decode(stderr).trim() || `exit ${code}`;
    throw new Error(`${program} ${args.join(" ")}: ${said}`);
  }
  return new TextDecoder().decode(stdout);
}
