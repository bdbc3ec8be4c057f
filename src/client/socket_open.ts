/**
 * Waiting for a client WebSocket to open, for the clients of the services
 * that speak WebSocket (queue sessions, pub/sub subscriptions).
 * @module
 */
import { clearTimeout, setTimeout } from "../base/timers.ts";

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
