/**
 * Run by ssh_user_master_test.ts in the testnet's desktop namespace, in a
 * mount namespace of its own where `~/.ssh` is `DIR/ssh` (whose config gives
 * gateway a ControlPath), as `DIR MODE`; prints what happened as JSON:
 *
 * - `borrow`: the user opens a master (`ssh gateway true`), then new logins
 *   become impossible (the key is moved away, as an MFA site refuses BatchMode);
 *   an SshConnection must work over the user's master and leave it open;
 * - `own`: no master answers on the user's ControlPath, where a stale file
 *   lies; without the key the open fails and says so, with it fabricd opens
 *   and stops a master of its own, and the user's path is left as it was;
 * - `reopen`: no ControlPath of the user's; two owners get a master each, and
 *   one's close leaves the other working; a master killed under an open
 *   connection is opened again at the next use, as a new generation;
 * - `orphan`: a process holding a master (mode `hold`) is SIGKILLed; its
 *   master runs on, and the same owner's next connection ends it on close.
 */
import { join } from "node:path";
import { SshConnection } from "../../src/launchers/ssh_connection.ts";

const [dir, mode] = Deno.args as [string, string];
const key = join(dir, "ssh", "id_ed25519");
const away = join(dir, "ssh", "id_away");

/** Runs ssh as the user would, without their key agent; `output` pipes stdout. */
async function ssh(args: string[], output = false): Promise<{ code: number; stdout: string }> {
  const out = await new Deno.Command("ssh", {
    args: ["-o", "BatchMode=yes", ...args],
    stdin: "null",
    // A master that ControlPersist puts in the background would hold a pipe open.
    stdout: output ? "piped" : "null",
    stderr: "null",
  }).output();
  return { code: out.code, stdout: output ? new TextDecoder().decode(out.stdout) : "" };
}

async function listing(path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(path)) names.push(entry.name);
  return names.sort();
}

/** Whether something listens on the gateway's loopback at `port` (asked over the user's master). */
async function listensOnGateway(port: number): Promise<boolean> {
  const probe = `bash -c '</dev/tcp/127.0.0.1/${port}' && echo yes`;
  return (await ssh(["gateway", probe], true)).stdout.includes("yes");
}

const controlDir = join(dir, "fabricd");
const result: Record<string, unknown> = {};
if (mode === "borrow") {
  const opened = await ssh(["gateway", "true"]);
  try {
    result.userMaster = opened.code;
    await Deno.rename(key, away);
    result.freshLogin = (await ssh(["-S", "none", "gateway", "true"])).code;
    const connection = new SshConnection({ host: "gateway" }, { controlDir });
    try {
      result.exec = (await connection.exec("echo ok")).stdout.trim();
      const remote = await connection.forwardRemote(9);
      result.forwardOpen = await listensOnGateway(remote);
      result.ownSockets = await listing(controlDir);
      await connection.close();
      result.forwardAfterClose = await listensOnGateway(remote);
    } finally {
      await connection.close();
    }
    result.checkAfterClose = (await ssh(["-O", "check", "gateway"])).code;
  } finally {
    await Deno.rename(away, key).catch(() => {});
    await ssh(["-O", "exit", "gateway"]);
  }
} else if (mode === "hold") {
  const connection = new SshConnection({ host: "gateway" }, { controlDir, owner: "brg-cccc3333" });
  await connection.exec("true");
  console.log("ready");
  await new Promise(() => {});
} else if (mode === "orphan") {
  const config = join(dir, "ssh", "config");
  const lines = (await Deno.readTextFile(config)).split("\n");
  await Deno.writeTextFile(config, lines.filter((l) => !l.includes("Control")).join("\n"));
  const holder = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL(import.meta.url).pathname, dir, "hold"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
  for (let text = ""; !text.includes("ready");) text += (await reader.read()).value ?? "";
  holder.kill("SIGKILL");
  await holder.status;
  const masters = async () => {
    const out = await new Deno.Command("pgrep", { args: ["-f", `ControlPath=${controlDir}/cm-`] })
      .output();
    return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).length;
  };
  result.orphaned = await masters();
  const next = new SshConnection({ host: "gateway" }, { controlDir, owner: "brg-cccc3333" });
  await next.exec("true");
  result.whileOpen = await masters();
  await next.close();
  await new Promise((resolve) => setTimeout(resolve, 300));
  result.afterClose = await masters();
  result.socketsAfterClose = await listing(controlDir);
} else if (mode === "reopen") {
  const config = join(dir, "ssh", "config");
  const lines = (await Deno.readTextFile(config)).split("\n");
  await Deno.writeTextFile(config, lines.filter((l) => !l.includes("Control")).join("\n"));
  const [a, b] = ["brg-aaaa1111", "brg-bbbb2222"].map((owner) =>
    new SshConnection({ host: "gateway" }, { controlDir, owner })
  ) as [SshConnection, SshConnection];
  try {
    await a.exec("true");
    await b.exec("true");
    result.sockets = (await listing(controlDir)).length;
    await b.close();
    result.afterOtherClosed = (await a.exec("echo ok")).stdout.trim();
    const before = a.generation;
    const check = await new Deno.Command("ssh", {
      args: ["-S", join(controlDir, (await listing(controlDir))[0]!), "-O", "check", "gateway"],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    const pid = Number(/pid=(\d+)/.exec(new TextDecoder().decode(check.stderr))?.[1]);
    Deno.kill(pid, "SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 300));
    result.afterKill = (await a.exec("echo again")).stdout.trim();
    result.newGeneration = a.generation > before;
  } finally {
    await a.close();
    await b.close();
  }
} else {
  const userPath = (await ssh(["-G", "gateway"], true)).stdout.match(/^controlpath (.+)$/m)![1]!;
  await Deno.writeTextFile(userPath, "stale");
  await Deno.rename(key, away);
  const refused = new SshConnection({ host: "gateway" }, { controlDir });
  result.refused = await refused.open().then(() => "opened", (error: Error) => error.message);
  await refused.close();
  await Deno.rename(away, key);
  const connection = new SshConnection({ host: "gateway" }, { controlDir });
  try {
    result.exec = (await connection.exec("echo ok")).stdout.trim();
    result.ownSockets = await listing(controlDir);
  } finally {
    await connection.close();
  }
  result.ownSocketsAfterClose = await listing(controlDir);
  result.userPathAfterClose = await Deno.readTextFile(userPath);
}
console.log(JSON.stringify(result));
