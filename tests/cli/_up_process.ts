/** A `fabricd up` process run by a test, and waiting on it. */
import { FABRICD, killQuietly, runFabricd } from "../e2e/_fabric.ts";

/** A running `fabricd up` whose output is collected. */
export interface UpProcess {
  child: Deno.ChildProcess;
  output(): string;
  /** Resolves with the exit code, or undefined after `ms`. */
  exit(ms: number): Promise<number | undefined>;
}

/** Starts `fabricd up ARGS`, collecting its stdout and stderr together. */
export function startUp(args: string[]): UpProcess {
  const child = new Deno.Command(FABRICD[0]!, {
    args: [...FABRICD.slice(1), "up", ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  };
  const read = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const status = child.status.then(async (s) => {
    await read;
    return s.code;
  });
  return {
    child,
    output: () => text,
    exit: async (ms) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)));
      try {
        return await Promise.race([status, late]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Waits until `ok()`, for at most `ms`; throws naming `what` after. */
export async function until(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stops whatever the fabric of `fabric` still runs and ends `ups`, even after a failure. */
export async function cleanUp(fabric: string, ups: UpProcess[]): Promise<void> {
  await runFabricd(["stop", "--all", "--grace", "1s", "--fabric", fabric]).catch(() => {});
  for (const up of ups) {
    killQuietly(up.child.pid);
    await up.exit(10_000);
  }
}
