/**
 * The registry's local read socket (docs/protocol.md 5.4): `registry.sock`
 * in the registry's state directory, a Unix socket that answers one request,
 * `GET /v1/registry/services`, unsigned. It lets `fabricd status` on the same
 * host read the fabric without loading keys, YAML or a signing library.
 *
 * Its trust is the file system's: the socket is 0600 in the 0700 state
 * directory beside the fabric's key file, so only the operator's own account
 * can connect, and the client checks that the socket and its directory belong
 * to it. Reading is every member's right anyway (docs/security.md); nothing
 * can be written through it.
 * @module
 */
import { log } from "../config/logging.ts";
import type { ServiceRecord } from "../types/mod.ts";

/** The socket's file name in the registry's state directory. */
export const LOCAL_SOCKET = "registry.sock";
/** The longest socket path Linux accepts (`sun_path` is 108 bytes with its NUL). */
const MAX_PATH_BYTES = 107;

/** What the socket serves, and who it is. */
export interface LocalReadSource {
  /** The registry's service ID, named in every answer. */
  id: string;
  /** The fabric's fingerprint now, named in every answer. */
  fingerprint(): string;
  /** The records, or null while the registry is stopping. */
  list(): Promise<ServiceRecord[]> | null;
}

/** A serving socket. */
export interface LocalSocket {
  readonly path: string;
  /** Stops serving and removes the socket file; idempotent. */
  stop(): Promise<void>;
}

/**
 * Serves `source` on `path`, or returns null when it cannot: the path is too
 * long for a socket, or another live registry serves it already. A socket file
 * left by a registry that died is replaced.
 */
export async function serveLocalReads(
  path: string,
  source: LocalReadSource,
): Promise<LocalSocket | null> {
  const logger = log("registry");
  if (new TextEncoder().encode(path).length > MAX_PATH_BYTES) {
    logger.debug("No local read socket: {path} is too long for a socket", { path });
    return null;
  }
  if (await answers(path)) {
    logger.warn("No local read socket: another registry serves {path}", { path });
    return null;
  }
  await Deno.remove(path).catch(() => {});
  let server: Deno.HttpServer<Deno.UnixAddr>;
  try {
    server = Deno.serve(
      { transport: "unix", path, onListen: () => {} },
      (request) => answer(request, source),
    );
    await Deno.chmod(path, 0o600);
  } catch (error) {
    logger.warn("No local read socket at {path}: {error}", { path, error: String(error) });
    return null;
  }
  let stopped = false;
  return {
    path,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.shutdown().catch(() => {});
      await Deno.remove(path).catch(() => {});
    },
  };
}

async function answer(request: Request, source: LocalReadSource): Promise<Response> {
  const url = new URL(request.url);
  // `?` alone is a query too (an empty one), which URL does not show.
  if (url.pathname !== "/v1/registry/services" || request.url.includes("?")) {
    return json(404, { error: "This socket serves GET /v1/registry/services only" });
  }
  if (request.method !== "GET") {
    return json(405, { error: "This socket is read-only: use GET" });
  }
  const listing = source.list();
  if (!listing) return json(503, { error: "The registry is stopping: retry in a moment" });
  try {
    const services = await listing;
    return json(200, { registry: source.id, fingerprint: source.fingerprint(), services });
  } catch (error) {
    return json(500, {
      error: `The registry cannot list its records: ${
        error instanceof Error ? error.message : String(error)
      }`,
    });
  }
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** Whether a live process accepts connections on the socket at `path`. */
async function answers(path: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return true;
  } catch {
    return false;
  }
}
