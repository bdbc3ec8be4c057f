/**
 * `fabricd up` is idempotent (issue 12, item 2), on a local fabric of real
 * processes: after `up` was SIGKILLed a new `up` adopts the surviving registry
 * and starts the dead spawner again on its port; `up` on a running fabric
 * attaches; Ctrl-C (SIGTERM) of an attached `up` stops the fabric, exit 0.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadContext } from "../../src/cli/context.ts";
import { FABRICD, killQuietly, withTempDir } from "./_fabric.ts";
import { eventually } from "../_eventually.ts";

/** A running `fabricd up`: its output so far, and its end. */
interface Up {
  process: Deno.ChildProcess;
  output: () => string;
  done: Promise<void>;
}

function startUp(dir: string): Up {
  const process = new Deno.Command(FABRICD[0]!, {
    args: [...FABRICD.slice(1), "up", "--dir", dir, "--heartbeat-ms", "500"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const read = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  };
  const done = Promise.all([read(process.stdout), read(process.stderr)]).then(() => {});
  return { process, output: () => text, done };
}

async function ready(up: Up): Promise<string> {
  await eventually(() => up.output().includes("Press Ctrl-C"), {
    timeoutMs: 60_000,
    what: "fabricd up ready",
  });
  return up.output();
}

async function stopUp(up: Up): Promise<number> {
  try {
    up.process.kill("SIGTERM");
  } catch {
    // Ended already.
  }
  const { code } = await up.process.status;
  await up.done;
  return code;
}

Deno.test("fabricd up adopts what a SIGKILLed up left, restarts the dead, and attaches to a running fabric", async () => {
  await withTempDir(async (dir) => {
    const ups: Up[] = [];
    const pids = new Set<number>();
    try {
      const first = startUp(dir);
      ups.push(first);
      await ready(first);
      const context = await loadContext(join(dir, "fabric.yaml"));
      const before = await context.registry.list();
      for (const record of before) pids.add(record.pid);
      const registry = before.find((r) => r.role === "registry")!;
      const spawner = before.find((r) => r.role === "spawner")!;

      first.process.kill("SIGKILL");
      await first.process.status;
      killQuietly(spawner.pid);

      const second = startUp(dir);
      ups.push(second);
      const said = await ready(second);
      assert.match(said, /is up/);
      assert.match(
        said,
        new RegExp(`registry: ${registry.id} at ${registry.endpoint} \\(was running: adopted\\)`),
      );
      assert.match(said, new RegExp(`spawner: +${spawner.id} at ${spawner.endpoint}$`, "m"));
      const after = await eventually(async () => {
        const records = await context.registry.list();
        const restarted = records.find((r) => r.id === spawner.id);
        return restarted?.state === "ALIVE" && restarted.pid !== spawner.pid && records;
      }, { timeoutMs: 20_000 });
      for (const record of after) pids.add(record.pid);
      assert.deepEqual(after.map((r) => r.id).sort(), before.map((r) => r.id).sort());
      assert.equal(after.find((r) => r.id === registry.id)?.pid, registry.pid, "registry adopted");

      const third = startUp(dir);
      ups.push(third);
      const attached = await ready(third);
      assert.match(attached, new RegExp(`already running in ${dir}: attached as its supervisor`));
      assert.match(attached, new RegExp(registry.id));

      assert.equal(await stopUp(third), 0, third.output());
      assert.match(third.output(), /Stopped 2 services/);
      // The other "up" saw the roots stop cleanly: it brings nothing back.
      await new Promise((resolve) => setTimeout(resolve, 4000));
      const left = await context.registry.list().catch(() => []);
      assert.ok(left.every((r) => r.state !== "ALIVE"), JSON.stringify(left));
      assert.equal(await stopUp(second), 0, second.output());
    } finally {
      for (const up of ups) {
        killQuietly(up.process.pid);
        await up.done.catch(() => {});
      }
      for (const pid of pids) killQuietly(pid);
    }
  });
});
