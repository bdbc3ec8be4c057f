/**
 * `idle-memory`: resident memory (VmRSS) of one service of each role, idle
 * after its start (plus a wait), and again after `BENCH_REQUESTS` requests of
 * `GET /v1/health`, against a bare `Deno.serve` hello-world measured the same
 * way in the same run. One `RESULT` line per role; the goal of issue 16 is
 * every role within 1.5x the bare server and growth within 10 %. Each line
 * also has the service's CPU time per 1,000 of those requests (from
 * /proc/PID/stat, so other load on the machine does not move it much): what
 * a flag that saves memory costs in request handling.
 *
 * `BENCH_FROM=image` runs the fabric from this checkout's image (the bundle,
 * as an installed `fabricd` and every remote host run it: `fabricd up`, then
 * `fabricd spawn` per role, RESULT names ending `-image`) instead of from
 * source (the default, as `deno task up` runs it).
 *
 * Services run with fabricd's own V8 flags (`SERVICE_V8_FLAGS`);
 * `BENCH_V8_FLAGS` (comma-separated, e.g. `--max-semi-space-size=2`; empty for
 * V8's defaults) replaces them, as `FABRIC_V8_FLAGS`, to measure a flag's
 * effect (docs/performance.md "Flags"). The bare server always runs with V8's
 * defaults.
 * @module
 */
import { join } from "node:path";
import { initFabric } from "../../src/cli/init.ts";
import { type LocalFabric, startLocalFabric } from "../../src/cli/local_fabric.ts";
import { spawnMany } from "../../src/cli/spawn.ts";
import { SERVICE_V8_FLAGS, V8_FLAGS_ENV } from "../../src/image/self_command.ts";
import { selfImage } from "../../src/image/self_image.ts";
import { LAUNCHER } from "../../src/image/image_dir.ts";
import type { Role, ServiceRecord } from "../../src/types/mod.ts";
import {
  type Benchmark,
  type BenchResult,
  clockTicksPerSecond,
  envNumber,
  printResult,
  processCpuSeconds,
  round,
  say,
  sleep,
  waitExited,
} from "./_harness.ts";

const NAME = "idle-memory";

/**
 * The `idle-memory` benchmark; `BENCH_IDLE_SECONDS` overrides the 60 s of idle
 * wait, `BENCH_REQUESTS` the 10,000 requests per service.
 */
export const idleMemory: Benchmark = {
  name: NAME,
  description: "VmRSS of each role idle and after 10k requests vs a bare Deno.serve (ratio <= 1.5)",
  run,
};

/** A process to measure: a role's service or the bare server. */
interface Subject {
  name: string;
  pid: number;
  url: string;
  idleKb?: number;
  /** Idle, its anonymous memory (V8's and malloc's heaps), KiB. */
  anonKb?: number;
  afterKb?: number;
  /** CPU seconds the process spent on the requests. */
  requestCpuS?: number;
}

const BARE_SERVER = `Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) =>
  console.log(port) }, () => new Response("hello"));\n`;

async function run(): Promise<BenchResult> {
  // Issue 16: "idle, after 1 minute".
  const idleSeconds = envNumber("BENCH_IDLE_SECONDS", 60);
  const requests = Math.round(envNumber("BENCH_REQUESTS", 10_000));
  const from = Deno.env.get("BENCH_FROM") === "image" ? "image" : "source";
  const chosen = Deno.env.get("BENCH_V8_FLAGS");
  if (chosen !== undefined) Deno.env.set(V8_FLAGS_ENV, chosen);
  const v8Flags = Deno.env.get(V8_FLAGS_ENV) ?? SERVICE_V8_FLAGS.join(",");
  const dir = await Deno.makeTempDir({ prefix: "fabricd-bench-memory-" });
  let fabric: RunningFabric | null = null;
  let bare: Deno.ChildProcess | null = null;
  const pids: number[] = [];
  try {
    fabric = from === "image" ? await startFromImage(dir) : await startFromSource(dir);
    const script = join(dir, "hello.ts");
    await Deno.writeTextFile(script, BARE_SERVER);
    const started = await startBare(script);
    bare = started.child;
    const subjects = [started.subject, ...fabric.subjects];
    pids.push(...subjects.map((s) => s.pid));
    say(
      NAME,
      `${subjects.length - 1} roles (from ${from}) and the bare server up; idle ${idleSeconds} s`,
    );
    await sleep(idleSeconds * 1000);
    for (const subject of subjects) {
      subject.idleKb = rssKb(subject.pid);
      subject.anonKb = anonymousKb(subject.pid);
    }
    say(NAME, `${requests} requests of GET /v1/health to each`);
    const ticks = await clockTicksPerSecond();
    for (const subject of subjects) {
      const before = processCpuSeconds(subject.pid, ticks);
      await hammer(subject.url, requests);
      subject.requestCpuS = processCpuSeconds(subject.pid, ticks) - before;
    }
    await sleep(2000);
    for (const subject of subjects) subject.afterKb = rssKb(subject.pid);
    return report(subjects, { idleSeconds, requests, v8Flags, from });
  } finally {
    if (fabric) pids.push(...await fabric.stop());
    bare?.kill("SIGTERM");
    await bare?.status;
    for (const pid of await waitExited(pids, 15_000)) {
      say(NAME, `process ${pid} still running after stop: killing it`);
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Gone in the meantime.
      }
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The services measured, and how to stop them (it returns the PIDs it knew of). */
interface RunningFabric {
  subjects: Subject[];
  stop(): Promise<number[]>;
}

/** A local fabric run by this process from source, as `deno task up` runs one. */
async function startFromSource(dir: string): Promise<RunningFabric> {
  const fabricPath = join(dir, "fabric.yaml");
  const local: LocalFabric = await startLocalFabric(fabricPath, await initFabric(fabricPath), {
    dir,
    port: 0,
    heartbeatMs: 2000,
  });
  const stop = async (): Promise<number[]> => {
    const pids = (await local.registry.list().catch(() => [])).map((record) => record.pid);
    await local.stopAll("benchmark finished").catch(() => 0);
    return pids;
  };
  try {
    return { subjects: await startRoles(local), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * A local fabric run from this checkout's image (built once per source hash),
 * as an installed `fabricd` runs one: `fabricd up` in a child process, each
 * role through `fabricd spawn`, PIDs and endpoints from `fabricd status --json`.
 */
async function startFromImage(dir: string): Promise<RunningFabric> {
  const image = await selfImage();
  const launcher = image.files.find((f) => f.name === LAUNCHER)!.path;
  const env = { HOME: dir, FABRIC_FILE: join(dir, "fabric.yaml") };
  const fabricd = async (args: string[]): Promise<string> => {
    const out = await new Deno.Command(launcher, { args, env, stdin: "null" }).output();
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) {
      throw new Error(
        `fabricd ${args.join(" ")}: exit ${out.code}: ${
          new TextDecoder().decode(out.stderr).trim() || text.trim()
        }`,
      );
    }
    return text;
  };
  await fabricd(["init"]);
  const up = new Deno.Command(launcher, {
    args: ["up", "--dir", dir, "--heartbeat-ms", "2000"],
    env,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const records = async (): Promise<ServiceRecord[]> =>
    (JSON.parse(await fabricd(["status", "--json"])) as { services: ServiceRecord[] }).services;
  const stop = async (): Promise<number[]> => {
    const pids = (await records().catch(() => [])).map((record) => record.pid);
    up.kill("SIGTERM");
    await up.status;
    return pids;
  };
  try {
    const deadline = Date.now() + 30_000;
    while ((await records().catch(() => [])).filter((r) => r.state === "ALIVE").length < 2) {
      if (Date.now() > deadline) throw new Error("fabricd up did not start within 30 s");
      await sleep(200);
    }
    const spawn = async (role: Role, options: string[] = []): Promise<string> =>
      (JSON.parse(await fabricd(["spawn", "--role", role, "--json", ...options])) as {
        id: string;
      }).id;
    for (const role of ["spawner", "bridge", "pilot-manager"] as const) await spawn(role);
    const queue = await spawn("queue");
    const pubsub = await spawn("pubsub");
    await spawn("agent", ["--option", `queue=${queue}`, "--option", `pubsub=${pubsub}`]);
    const all = await records();
    const order = ["registry", "spawner-root", "spawner", "bridge", "pilot-manager", "queue"];
    order.push("pubsub", "agent");
    const subjects = all.filter((r) => r.state === "ALIVE").map((r) => ({
      name: r.parent === "" && r.role === "spawner" ? "spawner-root" : r.role,
      pid: r.pid,
      url: r.endpoint,
    }));
    subjects.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
    return { subjects, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Prints a RESULT line per role but the last, which it returns. */
function report(
  subjects: Subject[],
  settings: { idleSeconds: number; requests: number; v8Flags: string; from: string },
): BenchResult {
  const [bareSubject, ...roles] = subjects;
  const mb = (kb: number | undefined): number => round((kb ?? 0) / 1024, 1);
  const bareIdle = bareSubject!.idleKb ?? 1;
  const perK = (subject: Subject): number =>
    round(((subject.requestCpuS ?? 0) * 1000) / (settings.requests / 1000), 1);
  say(
    NAME,
    `bare Deno.serve: ${mb(bareIdle)} MB idle (${mb(bareSubject!.anonKb)} MB anonymous), ` +
      `${mb(bareSubject!.afterKb)} MB after; ` +
      `${perK(bareSubject!)} ms CPU per 1,000 requests`,
  );
  let last: BenchResult | null = null;
  for (const role of roles) {
    if (last) printResult(last);
    const ratio = (role.idleKb ?? 0) / bareIdle;
    const growth = ((role.afterKb ?? 0) / (role.idleKb ?? 1) - 1) * 100;
    say(
      NAME,
      `${role.name}: ${mb(role.idleKb)} MB idle (ratio ${round(ratio, 2)}; ` +
        `${mb(role.anonKb)} MB anonymous), ` +
        `${mb(role.afterKb)} MB after requests (${round(growth, 1)} %); ` +
        `${perK(role)} ms CPU per 1,000 requests`,
    );
    last = {
      name: `${NAME}-${role.name}${settings.from === "image" ? "-image" : ""}`,
      value: mb(role.idleKb),
      baseline: mb(bareIdle),
      ratio: round(ratio, 3),
      unit: "MB",
      goal: "ratio <= 1.5, growth <= 10 %",
      goal_met: ratio <= 1.5 && growth <= 10,
      anonymous_mb: mb(role.anonKb),
      bare_anonymous_mb: mb(bareSubject!.anonKb),
      after_requests_mb: mb(role.afterKb),
      growth_pct: round(growth, 1),
      bare_after_requests_mb: mb(bareSubject!.afterKb),
      cpu_ms_per_1k_requests: perK(role),
      bare_cpu_ms_per_1k_requests: perK(bareSubject!),
      idle_seconds: settings.idleSeconds,
      requests: settings.requests,
      v8_flags: settings.v8Flags,
      from: settings.from,
    };
  }
  if (!last) throw new Error("No role was measured");
  return last;
}

/** Starts the bare hello-world server; its port comes on its stdout. */
async function startBare(script: string): Promise<{ child: Deno.ChildProcess; subject: Subject }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-net", script],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value = "" } = await reader.read();
  reader.releaseLock();
  void child.stdout.cancel().catch(() => {});
  const port = Number(value.trim());
  if (!(port > 0)) throw new Error(`The bare server printed no port: "${value}"`);
  return { child, subject: { name: "bare", pid: child.pid, url: `http://127.0.0.1:${port}` } };
}

/** The root registry and spawner, and one spawned service of every other role. */
async function startRoles(local: LocalFabric): Promise<Subject[]> {
  const spawnOne = async (role: Role, options: Record<string, string> = {}) => {
    const { started, failed } = await spawnMany(local.client, local.spawner, {
      body: { role, on: "local://", sessions: [], options },
      count: 1,
    });
    if (!started[0]) throw new Error(`Cannot spawn a ${role}: ${failed[0]?.message}`);
    return started[0];
  };
  const subjects: Subject[] = [];
  const add = async (role: string, id: string): Promise<void> => {
    const record = (await local.registry.get(id))?.record;
    if (!record) throw new Error(`No record of ${role} "${id}"`);
    subjects.push({ name: role, pid: record.pid, url: record.endpoint });
  };
  await add("registry", local.registryTarget.id);
  await add("spawner-root", local.spawner.id);
  for (const role of ["spawner", "bridge", "pilot-manager"] as const) {
    await add(role, (await spawnOne(role)).id);
  }
  const queue = await spawnOne("queue");
  const pubsub = await spawnOne("pubsub");
  await add("queue", queue.id);
  await add("pubsub", pubsub.id);
  await add("agent", (await spawnOne("agent", { queue: queue.id, pubsub: pubsub.id })).id);
  return subjects;
}

/** VmRSS of `pid` from /proc, KiB. */
export function rssKb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
  if (!(kb > 0)) throw new Error(`No VmRSS for process ${pid}`);
  return kb;
}

/**
 * The anonymous memory of `pid` (`Anonymous` of /proc/PID/smaps_rollup: the
 * heaps of V8 and malloc), KiB: what one more such process costs the host.
 * VmRSS also counts the pages of the `deno` executable the process touched,
 * which the host's page cache holds once for every process that runs it.
 */
export function anonymousKb(pid: number): number {
  const rollup = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
  return Number(/^Anonymous:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
}

/** `count` requests of GET /v1/health (GET / for the bare server), 8 at a time. */
async function hammer(url: string, count: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      const answer = await fetch(`${url}/v1/health`);
      await answer.body?.cancel();
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}
