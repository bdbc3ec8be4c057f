/**
 * A TCP relay: listens on an address the compute nodes can reach and pipes
 * each connection to a loopback endpoint of this host (the spawner, or a
 * registry forwarded here over SSH). Requests stay signed end to end, so the
 * relay only moves bytes; the one-time password never crosses it.
 * @module
 */

/** One listening relay to one target. */
export interface TcpRelay {
  /** The port it listens on. */
  port: number;
  /** Stops listening and closes the connections it carries. */
  close(): void;
}

/** Where a relay listens and where it leads. */
export interface TcpRelayOptions {
  /** Address to listen on. */
  bind: string;
  /** Port to listen on; when it is taken (or 0), any free port. */
  port?: number;
  /** `host` and `port` every connection is relayed to. */
  target: { host: string; port: number };
  /** Connections carried at once; one more is closed at once. Default {@linkcode MAX_RELAYED}. */
  maxConnections?: number;
}

/**
 * Connections a relay carries at once by default: as many as the front of the
 * service behind it takes (docs/protocol.md 2.10), where every relayed one
 * counts as the loopback peer.
 */
export const MAX_RELAYED = 1024;

/**
 * Listens on `options.bind` and relays every connection to `options.target`.
 * @throws {Error} when it cannot listen at all.
 */
export function startTcpRelay(options: TcpRelayOptions): TcpRelay {
  const { bind, target } = options;
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ hostname: bind, port: options.port ?? 0, transport: "tcp" });
  } catch (error) {
    if (!options.port || !(error instanceof Deno.errors.AddrInUse)) throw error;
    listener = Deno.listen({ hostname: bind, port: 0, transport: "tcp" });
  }
  const open = new Set<Deno.Conn>();
  let carried = 0;
  const carry = async (inbound: Deno.Conn): Promise<void> => {
    if (carried >= (options.maxConnections ?? MAX_RELAYED)) {
      inbound.close();
      return;
    }
    carried++;
    try {
      await carryOne(inbound);
    } finally {
      carried--;
    }
  };
  const carryOne = async (inbound: Deno.Conn): Promise<void> => {
    let outbound: Deno.Conn;
    try {
      outbound = await Deno.connect({ hostname: target.host, port: target.port });
    } catch {
      inbound.close();
      return;
    }
    open.add(inbound);
    open.add(outbound);
    const closeBoth = () => {
      for (const conn of [inbound, outbound]) {
        if (!open.delete(conn)) continue;
        try {
          conn.close();
        } catch {
          // Already closed by the other direction.
        }
      }
    };
    // Either side ending ends both: HTTP peers do not half-close, and a pipe
    // left waiting on a vanished peer would hold its connection forever. A
    // pipe fails when its peer goes: that is how a relay ends, not an error.
    await Promise.race([
      inbound.readable.pipeTo(outbound.writable).catch(() => {}),
      outbound.readable.pipeTo(inbound.writable).catch(() => {}),
    ]);
    closeBoth();
  };
  void (async () => {
    try {
      for await (const conn of listener) void carry(conn);
    } catch {
      // The listener was closed.
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      for (const conn of open) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      open.clear();
    },
  };
}
