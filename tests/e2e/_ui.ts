/** Starts `fabricd ui` for a test and reads its login URL. */
import { join } from "node:path";
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
