/**
 * A NATS server (Debian's `nats-server`) on a free loopback port for the
 * length of one benchmark: started, waited for, and always stopped.
 * @module
 */

/** Where Debian installs `nats-server`; `NATS_SERVER` overrides it. */
const DEFAULT_PATH = "/usr/sbin/nats-server";

/** A running NATS server. */
export interface NatsServer {
  /** `nats://127.0.0.1:PORT`. */
  url: string;
  pid: number;
  /** The server's version line (`nats-server: v2.9.10`). */
  version: string;
}

/**
 * Runs `fn` with a fresh NATS server, stopping it afterwards even when `fn`
 * throws.
 * @throws {Error} when `nats-server` is not installed ("install with apt-get
 * install -y nats-server") or does not listen within 10 s.
 */
export async function withNatsServer<T>(fn: (server: NatsServer) => Promise<T>): Promise<T> {
  const path = Deno.env.get("NATS_SERVER") || DEFAULT_PATH;
  let version: string;
  try {
    const out = await new Deno.Command(path, { args: ["--version"], stderr: "null" }).output();
    version = new TextDecoder().decode(out.stdout).trim();
  } catch (cause) {
    throw new Error(
      `Cannot run "${path}": install with apt-get install -y nats-server ` +
        "(or set NATS_SERVER to its path)",
      { cause },
    );
  }
  const port = freePort();
  const child = new Deno.Command(path, {
    args: ["-a", "127.0.0.1", "-p", String(port)],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log = readAll(child.stderr);
  try {
    await listening(port, child, log);
    return await fn({ url: `nats://127.0.0.1:${port}`, pid: child.pid, version });
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    const stopped = await Promise.race([
      child.status.then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 5000)),
    ]);
    if (!stopped) {
      child.kill("SIGKILL");
      await child.status;
    }
    await log;
  }
}

async function listening(
  port: number,
  child: Deno.ChildProcess,
  log: Promise<string>,
): Promise<void> {
  let exited = false;
  void child.status.then(() => (exited = true));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !exited) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  if (!exited) child.kill("SIGKILL");
  const status = await child.status;
  throw new Error(
    `nats-server did not listen on 127.0.0.1:${port} (exit code ${status.code}): ` +
      (await log).trim().split("\n").slice(-3).join(" | "),
  );
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  // Kept short: the server logs a few lines at start and stop.
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    text = (text + chunk).slice(-4096);
  }
  return text;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
