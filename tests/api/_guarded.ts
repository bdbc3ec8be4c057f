/**
 * A guarded server (the HTTP front and the server behind it) for one test:
 * on port 0 of loopback, with a short shutdown grace, shut down after it.
 * @module
 */
import { type GuardedServer, serveGuarded } from "../../src/api/guarded_server.ts";
import type { HttpFrontLimits } from "../../src/api/http_front.ts";

/** Serves `handler` behind a front with `limits` while `body` runs. */
export async function withServer(
  handler: Deno.ServeHandler<Deno.NetAddr>,
  limits: HttpFrontLimits,
  body: (server: GuardedServer) => Promise<void>,
): Promise<void> {
  const server = await serveGuarded(handler, {
    hostname: "127.0.0.1",
    port: 0,
    graceMs: 200,
    ...limits,
  });
  try {
    await body(server);
  } finally {
    await server.shutdown();
  }
}

/** Closes a connection the server may have closed already. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Closed by the server already.
  }
}
