/**
 * Pilots on a real Slurm (scripts/slurm-testcluster in testnet mode: slurmctld
 * on head, slurmd on compute1 and compute2), reached from the desktop through
 * two SSH bridges: a pilot manager on head submits agents with `sbatch`; they
 * bootstrap through its relay, register, run tasks; `scancel` is seen as an
 * agent's end; a job that ends before its bootstrap leaves no password.
 * Needs root; skips with a message otherwise, fails with FABRIC_E2E=require.
 */
import assert from "node:assert/strict";
import { eventually } from "../_eventually.ts";
import type { Pilot } from "../../src/services/pilot_manager/pilots.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";
import { withDesktopFabric } from "./_desktop_fabric.ts";
import { checkTools, skipPolicy } from "./_prereq.ts";
import { checkTestnet, type CommandResult, run, testnetExec, withTestnet } from "./_testnet.ts";

const SLURM_SCRIPT = new URL("../../scripts/slurm-testcluster", import.meta.url).pathname;

async function prerequisites() {
  const testnet = await checkTestnet();
  if (!testnet.ok) return testnet;
  return await checkTools("the Slurm pilot tests", [
    ["sbatch", "slurm-wlm"],
    ["slurmctld", "slurm-wlm"],
    ["slurmd", "slurm-wlm"],
    ["munged", "munge"],
  ]);
}
const { skip, assertReady } = skipPolicy(await prerequisites(), "Slurm pilot e2e tests");

// Each probe runs fabricd or a command on a test host: a process, so no faster than this.
const PROBE_MS = 300;

function ok(out: CommandResult, what: string): string {
  assert.equal(out.code, 0, `${what}: exit ${out.code}\n${out.stdout}${out.stderr}`);
  return out.stdout;
}

Deno.test({
  name: "pilots on a real Slurm: sbatch, bootstrap through the head node, tasks, scancel",
  ignore: skip,
}, async (t) => {
  assertReady();
  await withTestnet(async () => {
    ok(await run(SLURM_SCRIPT, ["up", "--testnet"]), "slurm-testcluster up");
    await withDesktopFabric("fabricd-slurm-", async ({ fabricd }) => {
      const json = async <T>(args: string[]): Promise<T> =>
        JSON.parse(ok(await fabricd([...args, "--json"]), args.join(" "))) as T;
      const records = async () => (await json<{ services: ServiceRecord[] }>(["status"])).services;
      const pilots = async () => (await json<{ pilots: Pilot[] }>(["pilot", "list"])).pilots;
      const spawn = async (args: string[]): Promise<string> =>
        (await json<{ id: string }>(["spawn", ...args])).id;
      const gateway = await spawn(["--role", "bridge", "--on", "ssh://gateway"]);
      const head = await spawn(["--role", "bridge", "--on", "ssh://head", "--via", gateway]);
      const manager = await spawn([
        "--role",
        "pilot-manager",
        "--via",
        head,
        "--option",
        "on=slurm://compute",
        "--option",
        "policy=report",
      ]);
      await spawn(["--role", "queue", "--via", manager]);
      await spawn(["--role", "pubsub", "--via", manager]);
      const managerStatus = async () =>
        await json<{ pendingPasswords: number }>(["status", manager]);

      let first = "";
      await t.step(
        "an agent submitted with sbatch bootstraps, registers and runs tasks",
        async () => {
          const submitted = await json<{ pilots: Pilot[] }>([
            "pilot",
            "submit",
            "--cores",
            "1",
            "--walltime",
            "10",
          ]);
          first = submitted.pilots[0]!.id;
          const running = await eventually(async () => {
            const pilot = (await pilots()).find((p) => p.id === first);
            return pilot?.state === "RUNNING" && pilot.service === "ALIVE" ? pilot : undefined;
          }, {
            timeoutMs: 60_000,
            intervalMs: PROBE_MS,
            what: "pilot RUNNING with its agent ALIVE",
          });
          assert.match(running.batch!.jobId, /^\d+$/);
          assert.match(running.batch!.nodes, /^compute[12]$/);
          const record = (await records()).find((r) => r.id === first)!;
          assert.equal(record.host, running.batch!.nodes, "the agent runs on the job's node");
          assert.deepEqual(record.route.slice(-2), [manager, first]);
          assert.equal((await managerStatus()).pendingPasswords, 0);
          const task = ok(
            await fabricd(["task", "submit", "--wait", "--", "/bin/sh", "-c", "hostname"], {
              timeoutS: 60,
            }),
            "task submit",
          );
          assert.match(task, new RegExp(`DONE on ${first}`));
          assert.match(task, new RegExp(`^\\s+${running.batch!.nodes}$`, "m"), "ran on the node");
          // The password travels in the job's environment: not in argv, not in the script.
          const argv = ok(
            await testnetExec(running.batch!.nodes as "compute1", ["ps", "-eo", "args"]),
            "ps",
          );
          assert.doesNotMatch(argv, /FABRIC_OTP=/);
          const script = ok(
            await testnetExec("head", [
              "scontrol",
              "write",
              "batch_script",
              running.batch!.jobId,
              "-",
            ]),
            "scontrol write batch_script",
          );
          assert.match(script, /^#SBATCH --export=FABRIC_OTP,FABRIC_PARENT,FABRIC_PIN/m);
          assert.doesNotMatch(script, /FABRIC_OTP=/);
          // The job script hands the password on stdin and drops it: the agent's
          // environment (readable in /proc) does not hold it.
          const agentEnv = (await Deno.readTextFile(`/proc/${record.pid}/environ`)).split("\0");
          assert.ok(agentEnv.some((e) => e.startsWith("FABRIC_PIN=")), "not the agent's environ");
          assert.ok(!agentEnv.some((e) => e.startsWith("FABRIC_OTP=")), "FABRIC_OTP in env");
        },
      );

      await t.step("scancel is seen by the fabric as the agent's end", async () => {
        const jobId = (await pilots()).find((p) => p.id === first)!.batch!.jobId;
        ok(await testnetExec("head", ["scancel", jobId]), "scancel");
        const pilot = await eventually(async () => {
          const found = (await pilots()).find((p) => p.id === first);
          return found?.state === "CANCELED" ? found : undefined;
        }, { timeoutMs: 30_000, intervalMs: PROBE_MS, what: "pilot CANCELED" });
        assert.equal(pilot.batch!.state, "CANCELLED");
        const record = await eventually(async () => {
          const found = (await records()).find((r) => r.id === first);
          return found?.state === "STOPPED" ? found : undefined;
        }, { timeoutMs: 30_000, intervalMs: PROBE_MS, what: "agent STOPPED" });
        assert.equal(record.incarnation, 1, "a cancelled pilot is not resubmitted");
      });

      await t.step("a job that ends before its bootstrap leaves no password behind", async () => {
        const refused = await fabricd([
          "pilot",
          "submit",
          "--on",
          "slurm://no-such-partition",
        ]);
        assert.equal(refused.code, 1);
        assert.match(refused.stderr, /sbatch .*(invalid partition|Invalid partition)/i);
        // Two pilots take both nodes' 2 cores; a third waits for resources.
        const submitted = await json<{ pilots: Pilot[] }>([
          "pilot",
          "submit",
          "--count",
          "3",
          "--cores",
          "2",
        ]);
        const ids = submitted.pilots.map((p) => p.id);
        let seen: Pilot[] = [];
        const waiting = await eventually(async () => {
          const mine = (await pilots()).filter((p) => ids.includes(p.id));
          seen = mine;
          const running = mine.filter((p) => p.state === "RUNNING" && p.service === "ALIVE");
          const queued = mine.filter((p) => p.state === "QUEUED");
          return running.length === 2 && queued.length === 1 ? queued[0] : undefined;
        }, { timeoutMs: 60_000, intervalMs: PROBE_MS, what: "two pilots RUNNING and one QUEUED" })
          .catch((error) => {
            throw new Error(
              `${error.message}: ${
                JSON.stringify(seen.map((p) => [p.state, p.service, p.reason]))
              }`,
            );
          });
        assert.equal((await managerStatus()).pendingPasswords, 1, "the waiting job's password");
        ok(await testnetExec("head", ["scancel", waiting.batch!.jobId]), "scancel");
        // Its spawn fails, and its agent is then left STOPPED by the cancelled pilot: no one
        // restarts it, and a restarted manager reads the pilot as CANCELED.
        await eventually(async () => {
          const found = (await records()).find((r) => r.id === waiting.id);
          return found?.state === "STOPPED" ? found : undefined;
        }, { timeoutMs: 30_000, intervalMs: PROBE_MS, what: "the waiting pilot's agent STOPPED" });
        const events = ok(
          await fabricd(["events", "--service", waiting.id, "--json"]),
          "events --service",
        );
        assert.match(events, /"to":"FAILED"[^}]*Slurm job \d+ CANCELLED/);
        assert.match(events, /"to":"STOPPED"[^}]*pilot cancelled/);
        assert.equal((await managerStatus()).pendingPasswords, 0);
        assert.equal((await pilots()).find((p) => p.id === waiting.id)!.state, "CANCELED");
      });

      await t.step(
        "a pilot manager killed with SIGKILL comes back under its ID and takes its pilots over",
        async () => {
          const before = (await records()).find((r) => r.id === manager)!;
          const running = (await pilots()).filter((p) => p.state === "RUNNING");
          assert.equal(running.length, 2);
          ok(await testnetExec("head", ["kill", "-9", String(before.pid)]), "kill -9");
          await eventually(async () => {
            const found = (await records()).find((r) => r.id === manager);
            return found?.state === "ALIVE" && found.incarnation === 2 ? found : undefined;
          }, {
            timeoutMs: 60_000,
            intervalMs: PROBE_MS,
            what: "the manager ALIVE again as incarnation 2",
          });
          const adopted = await eventually(async () => {
            const all = await pilots();
            return all.filter((p) => p.batch?.phase === "running").length === 2 ? all : undefined;
          }, { timeoutMs: 30_000, intervalMs: PROBE_MS, what: "its pilots followed again" });
          for (const pilot of running) {
            assert.equal(adopted.find((p) => p.id === pilot.id)?.state, "RUNNING");
          }
          // The agents reach the queue and the registry through the relays the
          // new incarnation reopened on the same ports.
          const task = ok(
            await fabricd(["task", "submit", "--wait", "--", "/bin/true"], { timeoutS: 60 }),
            "task submit after the restart",
          );
          assert.match(task, /DONE on agt-/);
          const beats = (await records()).filter((r) => running.some((p) => p.id === r.id));
          const later = await eventually(async () => {
            const all = await records();
            const now = beats.map((agent) => all.find((r) => r.id === agent.id)!);
            return now.every((r, i) => r.lastHeartbeat > beats[i]!.lastHeartbeat) && now;
          }, { timeoutMs: 15_000, intervalMs: PROBE_MS, what: "a heartbeat of each agent" });
          for (const now of later) {
            assert.equal(now.state, "ALIVE", now.id);
            assert.equal(now.incarnation, 1, `${now.id} was not restarted`);
          }
          // The new incarnation follows their jobs: one whose agent is killed outright
          // ends its job, and the pilot's policy (report) ends the pilot FAILED; its
          // agent is left FAILED, not restarted outside the policy.
          const victim = beats[0]!;
          const node = adopted.find((p) => p.id === victim.id)!.batch!.nodes as "compute1";
          ok(await testnetExec(node, ["kill", "-9", String(victim.pid)]), "kill -9 the agent");
          const ended = await eventually(async () => {
            const pilot = (await pilots()).find((p) => p.id === victim.id);
            return pilot?.state === "FAILED" && pilot.service === "FAILED" ? pilot : undefined;
          }, {
            timeoutMs: 60_000,
            intervalMs: PROBE_MS,
            what: "the killed agent's pilot FAILED by its policy, its agent FAILED",
          });
          assert.match(ended.reason, /Slurm job \d+ ended/);
          const agent = (await records()).find((r) => r.id === victim.id)!;
          assert.equal(agent.incarnation, 1, "restarted outside the pilot's policy");
        },
      );

      await t.step("stop --all leaves no agent and no job behind", async () => {
        ok(await fabricd(["stop", "--all"]), "stop --all");
        for (const node of ["compute1", "compute2"] as const) {
          const left = await testnetExec(node, [
            "sh",
            "-c",
            "pgrep -af 'js/main[.]js --role agent' || true",
          ]);
          assert.equal(left.stdout.trim(), "", `an agent still runs on ${node}`);
        }
        await eventually(async () => {
          const out = await testnetExec("head", ["squeue", "-h", "-t", "PENDING,RUNNING"]);
          return out.code === 0 && out.stdout.trim() === "";
        }, { timeoutMs: 30_000, intervalMs: PROBE_MS, what: "no job left in the queue" });
      });
    }).finally(async () => {
      await run(SLURM_SCRIPT, ["down"]);
    });
  });
});
