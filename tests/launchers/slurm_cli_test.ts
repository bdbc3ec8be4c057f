import assert from "node:assert/strict";
import {
  jobScript,
  parseExitCode,
  parseQueue,
  parseSubmitted,
  phaseOf,
} from "../../src/launchers/_slurm_cli.ts";
import { walltimeMinutes } from "../../src/types/walltime.ts";
import { checkLauncherUrl, LauncherUrlError } from "../../src/launchers/mod.ts";
import { batchJobs } from "../../src/launchers/batch_jobs.ts";
import { SlurmLauncher } from "../../src/launchers/slurm.ts";
import { slurmUrlSettings } from "../../src/launchers/slurm_url.ts";
import { eventually } from "../_eventually.ts";

Deno.test("jobScript() names the secret variables but holds no secret value", () => {
  const script = jobScript({
    id: "agt-1a2b3c4d",
    partition: "compute",
    cores: 2,
    walltimeMinutes: 30,
    logFile: "/home/u/.cache/fabricd/logs/agt-1a2b3c4d.log",
    workdir: "/home/u/.cache/fabricd",
    command: ["/opt/fabricd", "--role", "agent", "--id", "agt-1a2b3c4d"],
    exportNames: ["FABRIC_OTP", "FABRIC_PARENT", "FABRIC_PIN", "PATH"],
  });
  assert.match(script, /^#!\/bin\/sh\n/);
  assert.match(script, /^#SBATCH --export=FABRIC_OTP,FABRIC_PARENT,FABRIC_PIN,PATH$/m);
  assert.match(script, /^#SBATCH --partition=compute$/m);
  assert.match(script, /^#SBATCH --cpus-per-task=2$/m);
  assert.match(script, /^#SBATCH --time=30$/m);
  assert.match(
    script,
    /^otp=\$FABRIC_OTP\nunset FABRIC_OTP\nexec \/opt\/fabricd --role agent --id agt-1a2b3c4d <<FABRIC_OTP_END\n\$otp\nFABRIC_OTP_END$/m,
  );
  assert.doesNotMatch(script, /FABRIC_OTP=/);
});

Deno.test("jobScript() leaves out partition and time when not asked, and quotes odd words", () => {
  const script = jobScript({
    id: "agt-1",
    partition: "",
    cores: 1,
    walltimeMinutes: 0,
    logFile: "/tmp/x.log",
    workdir: "/tmp",
    command: ["/opt/my fabricd", "it's"],
    exportNames: ["FABRIC_OTP"],
  });
  assert.doesNotMatch(script, /--partition|--time/);
  assert.match(script, /^exec '\/opt\/my fabricd' 'it'"'"'s' <<FABRIC_OTP_END$/m);
});

Deno.test("parseSubmitted() reads sbatch --parsable output and refuses anything else", () => {
  assert.equal(parseSubmitted("42\n"), "42");
  assert.equal(parseSubmitted("43;cluster\n"), "43");
  assert.throws(() => parseSubmitted("sbatch: error: Batch job submission failed"), SyntaxError);
});

Deno.test("parseQueue() reads squeue lines by job ID and drops the None reason", () => {
  const found = parseQueue("12|RUNNING|compute1|None\n13|PENDING||Resources\ngarbage\n");
  assert.deepEqual(found.get("12"), {
    jobId: "12",
    state: "RUNNING",
    nodes: "compute1",
    reason: "",
  });
  assert.equal(found.get("13")?.reason, "Resources");
  assert.equal(found.size, 2);
});

Deno.test("phaseOf() maps Slurm's job states to queued, running and ended", () => {
  assert.equal(phaseOf("PENDING"), "queued");
  assert.equal(phaseOf("RUNNING"), "running");
  assert.equal(phaseOf("COMPLETING"), "running");
  for (const s of ["COMPLETED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "FAILED", "OUT_OF_MEMORY"]) {
    assert.equal(phaseOf(s), "ended", s);
  }
});

Deno.test("parseExitCode() gives 128+signal for a signal, the code otherwise, -1 when absent", () => {
  assert.equal(parseExitCode("JobId=5 JobState=CANCELLED ExitCode=0:15 Foo=1"), 143);
  assert.equal(parseExitCode("JobId=5 ExitCode=69:0"), 69);
  assert.equal(parseExitCode("slurm_load_jobs error: Invalid job id specified"), -1);
});

Deno.test("walltimeMinutes() reads minutes, units and clock times, rounding up", () => {
  assert.equal(walltimeMinutes("30"), 30);
  assert.equal(walltimeMinutes("90s"), 2);
  assert.equal(walltimeMinutes("2h"), 120);
  assert.equal(walltimeMinutes("1:30:00"), 90);
  assert.equal(walltimeMinutes("1-00:00:00"), 1440);
  assert.equal(walltimeMinutes("0-00:00:01"), 1);
  assert.throws(() => walltimeMinutes("05:30"), RangeError, "MM:SS is no documented form");
  assert.throws(() => walltimeMinutes("soon"), RangeError);
  assert.throws(() => walltimeMinutes("0"), RangeError);
});

Deno.test("checkLauncherUrl() refuses a slurm:// parameter as the launcher would, starting nothing", () => {
  assert.throws(
    () => checkLauncherUrl("slurm://compute?wait=soon"),
    (error: Error) =>
      error instanceof LauncherUrlError &&
      error.message === 'Invalid launcher "slurm://compute?wait=soon": wait must be a number of ' +
          "seconds",
  );
  assert.throws(() => checkLauncherUrl("slurm://compute?when=now"), /unknown parameter "when"/);
  assert.throws(() => checkLauncherUrl("ssh://a b"), /use ssh:\/\/\[user@\]host/);
  checkLauncherUrl("slurm://compute?wait=8");
  assert.equal(slurmUrlSettings("slurm://compute?wait=8").waitMs, 8000);
});

Deno.test("SlurmLauncher's kill() marks a job it cancels before it started, so its CANCELLED is no scancel", async () => {
  const bin = await Deno.makeTempDir();
  const dir = await Deno.makeTempDir();
  const script = async (name: string, body: string): Promise<void> => {
    await Deno.writeTextFile(`${bin}/${name}`, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  };
  await script("sbatch", "cat >/dev/null; echo 42");
  await script("squeue", "echo '42|PENDING||PartitionConfig'");
  await script("scancel", "exit 0");
  const path = Deno.env.get("PATH") ?? "";
  Deno.env.set("PATH", `${bin}:${path}`);
  const launcher = new SlurmLauncher("slurm://compute?wait=8", { dir, pollMs: 10 });
  try {
    const child = await launcher.launch({ id: "agt-0000kill", args: [], env: {}, options: {} });
    await eventually(() => batchJobs.get("agt-0000kill")?.reason === "PartitionConfig", {
      what: "the first poll",
    });
    child.kill("SIGKILL");
    assert.deepEqual(batchJobs.get("agt-0000kill")?.killed, {
      started: false,
      why: "no bootstrap within 8000 ms: the job did not start (PENDING, PartitionConfig)",
    });
  } finally {
    Deno.env.set("PATH", path);
    await launcher.close();
    await Deno.remove(bin, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  }
});
