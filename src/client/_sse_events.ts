/**
 * The events of a server-sent-event stream (docs/protocol.md 3.2): blocks
 * separated by a blank line, comment lines (`:`) skipped.
 * @module
 */

/**
 * Calls `onEvent` for each event of `body` that carries data, until the body
 * ends; an abort ends it quietly.
 * @throws {unknown} what reading the body throws, an abort excepted.
 */
export async function readEvents(
  body: ReadableStream<Uint8Array>,
  onEvent: (event: { id: string; event: string; data: string }) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for await (const chunk of body) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = { id: "", event: "message", data: "" };
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "data") data.push(value);
          else if (field === "id") event.id = value;
          else if (field === "event") event.event = value;
        }
        if (data.length > 0) onEvent({ ...event, data: data.join("\n") });
      }
    }
  } catch (error) {
    if (!(error instanceof DOMException && error.name === "AbortError")) throw error;
  }
}
