/**
 * The delaying half of the test network's WAN profile (`scripts/testnet up --wan`,
 * docs/testnet.md). This kernel has no netem, so the added delay comes from
 * this relay: it accepts TCP connections on LISTEN, opens one to TARGET for
 * each, and passes every chunk on in both directions DELAY_MS after it
 * arrived, in order. The rate limit is a `tbf` qdisc on the link itself.
 *
 * Bounded: at most 64 connections, and at most 4 MiB waiting per direction
 * (reading stops until the queue drains), so a stuck peer cannot grow it.
 *
 * Usage: deno run --allow-net scripts/testnet_delay_relay.ts LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_MS
 * @module
 */

const MAX_CONNECTIONS = 64;
const MAX_QUEUED_BYTES = 4 << 20;

function parseAddress(text: string | undefined): { hostname: string; port: number } {
  const match = /^([0-9.]+):(\d{1,5})$/.exec(text ?? "");
  if (!match) {
    console.error(`testnet_delay_relay: expected HOST:PORT, got "${text ?? ""}"`);
    Deno.exit(64);
  }
  return { hostname: match[1]!, port: Number(match[2]) };
}

/** A one-slot wake-up: `wait()` resolves at the next `fire()`. */
class Signal {
  #resolve: (() => void) | null = null;
  wait(): Promise<void> {
    return new Promise((resolve) => this.#resolve = resolve);
  }
  fire(): void {
    this.#resolve?.();
    this.#resolve = null;
  }
}

/** Copies `from` to `to`, each chunk released `delayMs` after it was read. */
async function delayedPipe(from: Deno.Conn, to: Deno.Conn, delayMs: number): Promise<void> {
  const queue: { at: number; bytes: Uint8Array }[] = [];
  let queued = 0;
  let ended = false;
  const wake = new Signal();
  const room = new Signal();
  const writer = (async () => {
    while (true) {
      if (queue.length === 0) {
        if (ended) break;
        await wake.wait();
        continue;
      }
      const next = queue[0]!;
      const wait = next.at - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      queue.shift();
      queued -= next.bytes.length;
      room.fire();
      let written = 0;
      while (written < next.bytes.length) written += await to.write(next.bytes.subarray(written));
    }
    await to.closeWrite().catch(() => {});
  })();
  try {
    const buffer = new Uint8Array(64 << 10);
    while (true) {
      while (queued >= MAX_QUEUED_BYTES) await room.wait();
      const n = await from.read(buffer);
      if (n === null) break;
      queue.push({ at: performance.now() + delayMs, bytes: buffer.slice(0, n) });
      queued += n;
      wake.fire();
    }
  } catch {
    // A reset ends this direction like an end of stream.
  } finally {
    ended = true;
    wake.fire();
  }
  await writer.catch(() => {});
}

async function serve(conn: Deno.TcpConn, target: Deno.ConnectOptions, delayMs: number) {
  let upstream: Deno.TcpConn;
  try {
    upstream = await Deno.connect(target);
    upstream.setNoDelay(true);
    conn.setNoDelay(true);
  } catch {
    conn.close();
    return;
  }
  await Promise.all([
    delayedPipe(conn, upstream, delayMs),
    delayedPipe(upstream, conn, delayMs),
  ]);
  for (const c of [conn, upstream]) {
    try {
      c.close();
    } catch {
      // Already closed.
    }
  }
}

if (import.meta.main) {
  const listen = parseAddress(Deno.args[0]);
  const target = parseAddress(Deno.args[1]);
  const delayMs = Number(Deno.args[2]);
  if (!Number.isFinite(delayMs) || delayMs < 0 || delayMs > 10_000) {
    console.error("testnet_delay_relay: DELAY_MS must be a number from 0 to 10000");
    Deno.exit(64);
  }
  const listener = Deno.listen({ ...listen, transport: "tcp" });
  let open = 0;
  for await (const conn of listener) {
    if (open >= MAX_CONNECTIONS) {
      conn.close();
      continue;
    }
    open++;
    serve(conn as Deno.TcpConn, { ...target, transport: "tcp" }, delayMs).finally(() => open--);
  }
}
