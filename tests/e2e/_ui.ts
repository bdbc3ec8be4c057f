/** Starts `fabricd ui` for a test and reads its login URL; puts tasks on a queue. */
import { join } from "node:path";
import type { LocalFabric } from "../../src/cli/local_fabric.ts";
import type { SpawnResult } from "../../src/types/mod.ts";
import { FABRICD } from "./_fabric.ts";

/** A running `fabricd ui`. */
export interface UiProcess {
  base: string;
  loginUrl: string;
  bearer: string;
  tokenFile: string;
  stop(): Promise<void>;
}

/** Runs `fabricd ui` on the fabric in `dir` until `stop()`. */
export async function startUi(dir: string): Promise<UiProcess> {
  const child = new Deno.Command(FABRICD[0]!, {
    args: [...FABRICD.slice(1), "ui", "--fabric", join(dir, "fabric.yaml")],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  while (!/login\?token=\S+\n/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`fabricd ui ended before it printed its URL: ${text}`);
    text += value;
  }
  clearTimeout(timer);
  void (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })().catch(() => {});
  const loginUrl = /(http:\/\/\S+\/login\?token=\S+)/.exec(text)![1]!;
  const tokenFile = join(dir, "ui.token");
  return {
    base: new URL(loginUrl).origin,
    loginUrl,
    bearer: (await Deno.readTextFile(tokenFile)).trim(),
    tokenFile,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // gone
      }
      await child.status;
    },
  };
}

/** Spawns a service of `role` through the root spawner of `local`. */
export async function spawnRole(
  local: LocalFabric,
  role: string,
  options: Record<string, string> = {},
): Promise<SpawnResult> {
  return await local.client.call<SpawnResult>(local.spawner, {
    method: "POST",
    path: "/v1/spawn",
    body: { role, options },
  }, { timeoutMs: 60_000 });
}

/** Puts `count` tasks running `executable` on queue `tasks` of service `queue`. */
export async function putTasks(
  local: LocalFabric,
  queue: SpawnResult,
  count: number,
  executable = "/bin/true",
): Promise<void> {
  const target = { id: queue.id, url: queue.endpoint };
  for (let i = 0; i < count; i++) {
    await local.client.call(target, {
      method: "POST",
      path: "/v1/queue/tasks/messages",
      body: { payload: { id: `t-${i}`, executable } },
    });
  }
}

/** Messages of queue `tasks` ready and in flight. */
export async function queueCounts(
  local: LocalFabric,
  queue: SpawnResult,
): Promise<{ ready: number; inflight: number }> {
  return await local.client.call({ id: queue.id, url: queue.endpoint }, {
    method: "GET",
    path: "/v1/queue/tasks",
  });
}
