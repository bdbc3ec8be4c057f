import assert from "node:assert/strict";
import {
  jobScript,
  parseExitCode,
  parseQueue,
  parseSubmitted,
  phaseOf,
  walltimeMinutes,
} from "../../src/launchers/_slurm_cli.ts";

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
  assert.equal(walltimeMinutes("05:30"), 6);
  assert.throws(() => walltimeMinutes("soon"), RangeError);
  assert.throws(() => walltimeMinutes("0"), RangeError);
});
