/**
 * The bound on a request body, kept without reading the body before its
 * signature has verified (docs/protocol.md 2.6): a declared `Content-Length`
 * over the bound is refused at once, and a chunked body is counted only as
 * it is read, so a client without a key cannot make a service hold one.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";

/**
 * Largest body of `POST /v1/bootstrap`, bytes: its fields take about 3 KiB
 * at most (a 2,048-character endpoint, a 253-character host, four keys).
 */
export const BOOTSTRAP_BODY_BYTES = 16 * 1024;

/** The 413 of a body over `maxBytes`. */
export function bodyTooLarge(maxBytes: number): HTTPException {
  return new HTTPException(413, {
    message: `Request body is larger than ${maxBytes} bytes: send less`,
  });
}

/**
 * Bounds every request body at `maxBytes`. A body whose `Content-Length`
 * says more is refused 413 before anything else looks at the request; a
 * chunked one is replaced by a stream that is pulled only when someone reads
 * it (the signature check, after the signature verified, or the handler) and
 * fails that read with the same 413 once it passes the bound.
 */
export function boundedBodies(maxBytes: number): MiddlewareHandler {
  return async (c, next) => {
    const request = c.req.raw;
    if (request.body === null) return await next();
    const declared = request.headers.get("content-length");
    if (declared !== null && !request.headers.has("transfer-encoding")) {
      if (Number(declared) > maxBytes) throw bodyTooLarge(maxBytes);
      return await next();
    }
    c.req.raw = new Request(request, {
      body: cappedStream(request.body, maxBytes),
      duplex: "half",
    } as RequestInit);
    return await next();
  };
}

/** `body` read one chunk at a time, on demand, erroring past `maxBytes`. */
function cappedStream(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let size = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) return controller.close();
      size += value.byteLength;
      if (size > maxBytes) {
        controller.error(bodyTooLarge(maxBytes));
        await reader.cancel().catch(() => {});
        return;
      }
      controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}
