/**
 * The live stream of `fabricd ui`: the registry's change stream, followed
 * once by the UI, fanned out to at most `maxStreams` pages as server-sent
 * events. A page that does not read is dropped rather than buffered for.
 * @module
 */
import { HTTPException } from "hono/http-exception";
import type { RegistryEvent } from "../types/mod.ts";
import { clearInterval, setInterval } from "../base/timers.ts";

/** Options of {@linkcode EventFanout}. */
export interface EventFanoutOptions {
  /** Pages following at once; the next one gets 503. Default 32. */
  maxStreams?: number;
  /** Time between keep-alive comments, ms. Default 15,000. */
  keepAliveMs?: number;
  /** Events a page may fall behind before it is dropped. Default 256. */
  maxBehind?: number;
}

/** Registry events to every open page. */
export class EventFanout {
  #streams = new Set<(event: RegistryEvent) => void>();
  #closers = new Set<() => void>();
  #maxStreams: number;
  #keepAliveMs: number;
  #maxBehind: number;
  #lastSeq = 0;

  /** A fan-out with no page yet. */
  constructor(options: EventFanoutOptions = {}) {
    this.#maxStreams = options.maxStreams ?? 32;
    this.#keepAliveMs = options.keepAliveMs ?? 15_000;
    this.#maxBehind = options.maxBehind ?? 256;
  }

  /** Pages following now. */
  get size(): number {
    return this.#streams.size;
  }

  /** Sends `event` to every open page. */
  publish(event: RegistryEvent): void {
    if (event.kind === "transition") this.#lastSeq = Math.max(this.#lastSeq, event.seq);
    for (const send of this.#streams) send(event);
  }

  /**
   * A new page's stream: `text/event-stream`, each event named by its kind.
   * @throws {HTTPException} 503 when `maxStreams` pages follow already.
   */
  open(): Response {
    if (this.#streams.size >= this.#maxStreams) {
      throw new HTTPException(503, {
        message: `${this.#maxStreams} pages follow already: close one`,
      });
    }
    const encoder = new TextEncoder();
    const streams = this.#streams;
    const closers = this.#closers;
    const maxBehind = this.#maxBehind;
    let send: ((event: RegistryEvent) => void) | null = null;
    let keepAlive: ReturnType<typeof setInterval> | undefined;
    let close = (): void => {};
    const forget = (): void => {
      if (send) streams.delete(send);
      closers.delete(close);
      clearInterval(keepAlive);
    };
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        close = (): void => {
          forget();
          try {
            controller.close();
          } catch {
            // Already closed.
          }
        };
        send = (event) => {
          if ((controller.desiredSize ?? 0) < -maxBehind) return close();
          controller.enqueue(
            encoder.encode(
              `event: ${event.kind}\nid: ${event.seq}\ndata: ${JSON.stringify(event)}\n\n`,
            ),
          );
        };
        streams.add(send);
        closers.add(close);
        controller.enqueue(encoder.encode(`: since ${this.#lastSeq}\n\n`));
        keepAlive = setInterval(() => {
          if ((controller.desiredSize ?? 0) < -maxBehind) return close();
          controller.enqueue(encoder.encode(": keep-alive\n\n"));
        }, this.#keepAliveMs);
      },
      cancel: forget,
    }, { highWaterMark: 0 });
    return new Response(body, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
    });
  }

  /** Ends every open stream; pages opened later still work. */
  close(): void {
    for (const close of [...this.#closers]) close();
  }
}
