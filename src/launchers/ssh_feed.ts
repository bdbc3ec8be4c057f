/**
 * Local programs feeding remote commands over an {@linkcode SshConnection}:
 * bulk data goes from the program straight into the SSH channel and never
 * passes through this process.
 * @module
 */
import { shellQuote, type SshConnection, SshError, type SshResult } from "./ssh_connection.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";

/** What a fed command did; `fed` is false only when a feeding program that ran failed. */
export type FedResult = SshResult & { fed: boolean };

/**
 * Runs `command` on the host with its standard input fed by `producer`
 * (argv, no shell).
 */
export function feed(
  ssh: SshConnection,
  producer: readonly string[],
  command: string,
): Promise<FedResult> {
  return run(ssh, command, (status) => [
    `{ ${argv(producer)}; echo $? >${shellQuote(status)}; } | exec ssh "$@"`,
  ]);
}

/**
 * Runs `command` on the host and waits for its first line of output; when
 * that line is a key of `answers`, the local program under it (argv, no
 * shell) feeds the command's standard input. Otherwise the input is closed at
 * once. So one command can first say what it lacks and then receive it,
 * without a second command. `stdout` holds the first line too.
 * @throws {SshError} when the first line does not come within
 * `firstLineTimeoutMs` (then the master connection is closed, as a cut link
 * leaves it looking open: the next use connects afresh).
 */
export function feedOnAnswer(
  ssh: SshConnection,
  command: string,
  answers: Record<string, readonly string[]>,
  firstLineTimeoutMs = 0,
): Promise<FedResult> {
  const cases = Object.entries(answers).map(([key, producer]) =>
    `${shellQuote(key)}) ${argv(producer)} >&3; echo $? >"$s" ;;`
  );
  // Two FIFOs stand between this shell and ssh; opened in this order (ssh's
  // input, then its output) neither side waits for the other. The output is
  // drained while the program feeds, so a chatty command cannot stall it; the
  // drain must not hold ssh's input open (3>&-), or the host never sees its end.
  return run(ssh, command, (status) => [
    `s=${shellQuote(status)}; d=$(mktemp -d) && mkfifo "$d/i" "$d/o" || exit 70`,
    'ssh "$@" <"$d/i" >"$d/o" & p=$!',
    'exec 3>"$d/i" 4<"$d/o"; rm -rf "$d"',
    "IFS= read -r first <&4 || first=; printf '%s\\n' \"$first\"",
    "cat <&4 3>&- & c=$!",
    `case "$first" in ${cases.join(" ")} esac`,
    'exec 3>&-; wait "$c"; wait "$p"',
  ], firstLineTimeoutMs);
}

function argv(words: readonly string[]): string {
  return words.map(shellQuote).join(" ");
}

async function run(
  ssh: SshConnection,
  command: string,
  script: (status: string) => string[],
  firstLineTimeoutMs = 0,
): Promise<FedResult> {
  const args = await ssh.commandArgs(command);
  const status = await Deno.makeTempFile({ prefix: "fabricd-feed-" });
  const silent = new AbortController();
  const timer = firstLineTimeoutMs > 0
    ? setTimeout(() => silent.abort(), firstLineTimeoutMs)
    : undefined;
  try {
    await Deno.writeTextFile(status, "0\n");
    const child = new Deno.Command("sh", {
      args: ["-c", script(status).join("\n"), "feed", ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: silent.signal,
    }).spawn();
    const chunks: Uint8Array[] = [];
    const reading = (async () => {
      for await (const chunk of child.stdout) {
        chunks.push(chunk);
        if (chunk.includes(10)) clearTimeout(timer);
      }
    })();
    const stderr = new Response(child.stderr).text();
    const code = (await child.status).code;
    if (silent.signal.aborted) {
      // ssh under the killed shell holds its output open until the master goes.
      await ssh.close();
      await reading.catch(() => {});
      await stderr.catch(() => "");
      throw new SshError(
        `No answer from ${ssh.target.host} within ${firstLineTimeoutMs / 1000} s`,
      );
    }
    await reading;
    return {
      code,
      fed: (await Deno.readTextFile(status)).trim() === "0",
      stdout: new TextDecoder().decode(concat(chunks)),
      stderr: await stderr,
    };
  } finally {
    clearTimeout(timer);
    // A temporary file; one already gone is fine.
    await Deno.remove(status).catch(() => {});
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}
