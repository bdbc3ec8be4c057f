/**
 * The Slurm test cluster itself (scripts/slurm-testcluster, tests/e2e/_slurm.ts): in testnet
 * mode a batch job submitted on head runs on a compute node, a running job is cancelled,
 * `up` twice keeps the daemons, and `down` leaves no process; in local mode the same on this
 * machine; and a slurm.conf the script did not write is never overwritten. Needs root, Debian's
 * slurm-wlm and munge (and the testnet's packages); skips with a message otherwise, and fails
 * instead when FABRIC_E2E=require.
 */
import assert from "node:assert/strict";
import { skipPolicy } from "./_prereq.ts";
import { testnetDown, testnetUp } from "./_testnet.ts";
import {
  checkSlurm,
  processAlive,
  SLURM_CONF,
  SLURM_MARKER,
  SLURM_STATE_DIR,
  slurmClient,
  type SlurmCluster,
  slurmCluster,
  slurmDown,
  slurmJobState,
  type SlurmProcess,
  slurmProcesses,
  slurmStatus,
  slurmSubmit,
  slurmUp,
  slurmWaitJobState,
} from "./_slurm.ts";

const testnetMode = skipPolicy(await checkSlurm("testnet"), "the Slurm test cluster (testnet)");
const localMode = skipPolicy(await checkSlurm("local"), "the Slurm test cluster (local)");

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Runs `hostname -s` in a batch job and returns what the job wrote. */
async function jobHostname(cluster: SlurmCluster, dir: string): Promise<string> {
  // The file system is shared, so a file the job writes on a compute node is readable here.
  const id = await slurmSubmit(cluster, [
    "-D",
    dir,
    "-o",
    `${dir}/hostname-%j.out`,
    "--wrap",
    "hostname -s",
  ]);
  await slurmWaitJobState(cluster, id, { state: "COMPLETED" });
  return (await Deno.readTextFile(`${dir}/hostname-${id}.out`)).trim();
}

/** A `sleep 300` job is RUNNING, then scancel makes it CANCELLED. */
async function cancelRunningJob(cluster: SlurmCluster, dir: string): Promise<void> {
  const id = await slurmSubmit(cluster, ["-D", dir, "-o", "/dev/null", "--wrap", "sleep 300"]);
  await slurmWaitJobState(cluster, id, { state: "RUNNING" });
  const cancel = await slurmClient(cluster, ["scancel", id]);
  assert.equal(cancel.code, 0, cancel.stderr);
  await slurmWaitJobState(cluster, id, { state: "CANCELLED", timeoutMs: 15_000 });
  assert.equal(await slurmJobState(cluster, id), "CANCELLED");
}

/**
 * Takes the cluster down while a job runs and checks that nothing it started survives: not
 * the daemons, not the job's slurmstepd, not the job's processes.
 */
async function downLeavesNothing(cluster: SlurmCluster, dir: string): Promise<void> {
  const id = await slurmSubmit(cluster, ["-D", dir, "-o", "/dev/null", "--wrap", "sleep 300"]);
  await slurmWaitJobState(cluster, id, { state: "RUNNING" });
  // RUNNING is slurmctld's word once it has allocated the node; the slurmd starts the
  // job's slurmstepd and `sleep` a moment later.
  let before: SlurmProcess[] = [];
  const deadline = Date.now() + 10_000;
  while (!before.some((p) => p.cmdline === "sleep 300") && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    before = await slurmProcesses();
  }
  const names = before.map((p) => p.cmdline.split(" ")[0]);
  assert.ok(names.includes("sleep"), `the job's sleep among ${JSON.stringify(names)}`);
  for (const daemon of ["/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd"]) {
    assert.ok(names.includes(daemon), `${daemon} among ${JSON.stringify(names)}`);
  }
  assert.ok(names.includes("slurmstepd:"), `a slurmstepd among ${JSON.stringify(names)}`);
  assert.equal(names.filter((n) => n === "/usr/sbin/slurmd").length, cluster.nodes.length);

  await slurmDown();
  const alive: string[] = [];
  for (const p of before) if (await processAlive(p.pid)) alive.push(`${p.pid} ${p.cmdline}`);
  assert.deepEqual(alive, [], "processes of the cluster alive after down");
  assert.deepEqual(await slurmProcesses(), []);
  assert.equal(await exists(SLURM_CONF), false, `${SLURM_CONF} removed`);
  assert.equal(await exists(`${SLURM_STATE_DIR}/ctld`), false, "slurmctld state removed");
  // Idempotent: nothing runs, still exit 0; status says it is down.
  const again = await slurmCluster(["down"]);
  assert.equal(again.code, 0, again.stderr);
  assert.notEqual((await slurmCluster(["status"])).code, 0);
}

Deno.test({
  name: "slurm-testcluster up runs a batch job on a compute node",
  ignore: testnetMode.skip,
  async fn(t) {
    testnetMode.assertReady();
    const dir = await Deno.makeTempDir({ prefix: "fabricd-slurm-test-" });
    try {
      // Start from nothing, whatever an earlier run left behind.
      await slurmDown();
      await testnetUp();
      const cluster = await slurmUp("testnet");
      assert.deepEqual(cluster, {
        mode: "testnet",
        controller: "head",
        partition: "compute",
        nodes: ["compute1", "compute2"],
        conf: SLURM_CONF,
      });
      assert.ok((await Deno.readTextFile(SLURM_CONF)).startsWith(SLURM_MARKER));

      await t.step("slurm-testcluster status reports every daemon on its host", async () => {
        const status = await slurmStatus();
        assert.equal(status.ok, true, JSON.stringify(status));
        assert.deepEqual(
          status.daemons.map((d) => [d.daemon, d.host, d.running]),
          [
            ["munged", "head", true],
            ["slurmctld", "head", true],
            ["slurmd", "compute1", true],
            ["slurmd", "compute2", true],
          ],
        );
      });

      await t.step("sbatch on head runs the job on a compute node", async () => {
        const host = await jobHostname(cluster, dir);
        assert.ok(host === "compute1" || host === "compute2", `job ran on ${JSON.stringify(host)}`);
      });

      await t.step("scancel makes a running job CANCELLED", async () => {
        await cancelRunningJob(cluster, dir);
      });

      await t.step("slurm-testcluster keeps the running daemons when up runs twice", async () => {
        const pids = (await slurmStatus()).daemons.map((d) => d.pid);
        assert.deepEqual(await slurmUp(), cluster);
        assert.deepEqual((await slurmStatus()).daemons.map((d) => d.pid), pids);
      });

      await t.step("slurm-testcluster leaves no process behind when down", async () => {
        await downLeavesNothing(cluster, dir);
      });
    } finally {
      await slurmDown();
      await testnetDown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "slurm-testcluster up --local runs a batch job on this machine",
  ignore: localMode.skip,
  async fn(t) {
    localMode.assertReady();
    const dir = await Deno.makeTempDir({ prefix: "fabricd-slurm-test-" });
    try {
      await slurmDown();
      const cluster = await slurmUp("local");
      const self = new TextDecoder().decode(
        (await new Deno.Command("hostname", { args: ["-s"], stdout: "piped" }).output()).stdout,
      ).trim();
      assert.deepEqual(cluster, {
        mode: "local",
        controller: self,
        partition: "compute",
        nodes: [self],
        conf: SLURM_CONF,
      });

      await t.step("sbatch runs the job on this machine's node", async () => {
        assert.equal(await jobHostname(cluster, dir), self);
      });

      await t.step("scancel makes a running job CANCELLED", async () => {
        await cancelRunningJob(cluster, dir);
      });

      await t.step("slurm-testcluster leaves no process behind when down", async () => {
        await downLeavesNothing(cluster, dir);
      });
    } finally {
      await slurmDown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "slurm-testcluster up refuses to overwrite a slurm.conf it did not write",
  ignore: localMode.skip,
  async fn() {
    localMode.assertReady();
    await slurmDown();
    // A real site's config is never touched, not even by this test.
    if (await exists(SLURM_CONF)) {
      console.log(`${SLURM_CONF} exists and is not ours; not replacing it for this test`);
      return;
    }
    const foreign = "ClusterName=somebody-else\n";
    await Deno.writeTextFile(SLURM_CONF, foreign);
    try {
      const r = await slurmCluster(["up", "--local"]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /not written by slurm-testcluster/);
      assert.equal(await Deno.readTextFile(SLURM_CONF), foreign);
      assert.deepEqual(await slurmProcesses(), []);
      // down leaves it too.
      assert.equal((await slurmCluster(["down"])).code, 0);
      assert.equal(await Deno.readTextFile(SLURM_CONF), foreign);
    } finally {
      await Deno.remove(SLURM_CONF);
    }
  },
});
