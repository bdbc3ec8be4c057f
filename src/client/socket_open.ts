/**
 * Opening a client WebSocket to a service that speaks WebSocket (queue
 * sessions, pub/sub subscriptions), and checking who accepted it: the 101
 * is unsigned, so a socket asked with `?proof=1` waits for the service's
 * signed first frame (docs/protocol.md 3.3). Without it, any process that
 * took a dead service's port could accept the socket and, to an agent,
 * hand out tasks.
 * @module
 */
import { clearTimeout, setTimeout } from "../base/timers.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import { verifyResponse } from "../crypto/signing.ts";
import { trustOf } from "../crypto/trust.ts";
import type { SocketProofFrame } from "../types/wire.ts";
import type { Target } from "./fabric_client.ts";

/**
 * True once `socket` is open, or why it did not open within `timeoutMs` (the
 * socket is then closed).
 */
export function openedWithin(socket: WebSocket, timeoutMs: number): Promise<true | string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.close();
      done(`not open within ${timeoutMs} ms`);
    }, timeoutMs);
    const done = (result: true | string): void => {
      clearTimeout(timer);
      socket.removeEventListener("open", onOpen);
      socket.removeEventListener("error", onError);
      resolve(result);
    };
    const onOpen = (): void => done(true);
    const onError = (event: Event): void =>
      done(event instanceof ErrorEvent && event.message ? event.message : "connection error");
    socket.addEventListener("open", onOpen);
    socket.addEventListener("error", onError);
  });
}

/** Frames held while a socket's proof is checked, at most. */
const MAX_EARLY_FRAMES = 1024;

/** What a proven socket received after its proof while the proof was checked. */
export interface ProvenSocket {
  /** Frames that came after the proof, in order, for the socket's reader to take first. */
  early: unknown[];
}

/**
 * Opens `socket` (asked with `?proof=1` and signed with `nonce` for
 * `target`) and checks its first frame: an answer signature for that nonce
 * by `target` itself or the fabric root. Resolves with the frames that
 * followed, or why it is refused (the socket is then closed).
 */
export async function openedAndProven(
  socket: WebSocket,
  check: { keys: FabricKeys; target: Target; nonce: string; timeoutMs: number },
): Promise<ProvenSocket | string> {
  const frames: unknown[] = [];
  let arrived: (() => void) | null = null;
  const onMessage = (event: MessageEvent): void => {
    // Held while the proof is checked: a few frames, or a peer that floods.
    if (frames.length >= MAX_EARLY_FRAMES) return socket.close();
    frames.push(event.data);
    arrived?.();
  };
  socket.addEventListener("message", onMessage);
  const deadline = Date.now() + check.timeoutMs;
  try {
    const opened = await openedWithin(socket, check.timeoutMs);
    if (opened !== true) return opened;
    if (frames.length === 0) {
      const waited = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
        const onClose = (): void => resolve(false);
        socket.addEventListener("close", onClose, { once: true });
        arrived = () => {
          clearTimeout(timer);
          socket.removeEventListener("close", onClose);
          resolve(true);
        };
      });
      arrived = null;
      if (!waited) {
        socket.close();
        return `no proof of the service within ${check.timeoutMs} ms`;
      }
    }
    const refused = await proofRefusal(frames[0], check);
    if (refused) {
      socket.close(1000, "no proof of the service");
      return `the socket was not accepted by "${check.target.id}": ${refused}`;
    }
    return { early: frames.slice(1) };
  } finally {
    socket.removeEventListener("message", onMessage);
  }
}

/** Why `data` is not a proof by `check.target` for `check.nonce`; null when it is. */
async function proofRefusal(
  data: unknown,
  check: { keys: FabricKeys; target: Target; nonce: string },
): Promise<string | null> {
  let frame: Partial<SocketProofFrame>;
  try {
    frame = typeof data === "string" ? JSON.parse(data) : {};
  } catch {
    return "its first frame is not JSON";
  }
  const fields = frame?.headers;
  if (frame?.op !== "proof" || typeof fields !== "object" || fields === null) {
    return 'its first frame is not a proof ({"op": "proof", ...})';
  }
  let headers: Headers;
  try {
    headers = new Headers(fields);
  } catch {
    return "its proof holds malformed headers";
  }
  const verdict = await verifyResponse(
    { status: 101, headers, body: new Uint8Array() },
    { trust: trustOf(check.keys), requestNonce: check.nonce },
  );
  if (!verdict.ok) return `its proof is not signed by this fabric (${verdict.reason})`;
  const by = verdict.signer;
  if (by.kind === "service" && by.id !== check.target.id) {
    return `its proof is signed by another service, "${by.id}"`;
  }
  return null;
}
