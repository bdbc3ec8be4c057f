import assert from "node:assert/strict";
import { HTTPException } from "hono/http-exception";
import { EventFanout } from "../../src/ui/event_fanout.ts";
import type { RegistryEvent } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";

function event(seq: number): RegistryEvent {
  return { seq, kind: "transition", record: serviceRecord("spw-00000001") };
}

async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  pattern: RegExp,
): Promise<string> {
  let text = "";
  while (!pattern.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  return text;
}

Deno.test("EventFanout.open() streams each published event to every page as SSE", async () => {
  const fanout = new EventFanout();
  fanout.publish(event(4));
  const pages = [fanout.open(), fanout.open()].map((r) => r.body!.getReader());
  assert.equal(fanout.size, 2);
  fanout.publish(event(5));
  for (const reader of pages) {
    const text = await readUntil(reader, /id: 5/);
    assert.match(text, /^: since 4\n\n/);
    assert.match(text, /event: transition\nid: 5\ndata: \{"seq":5,/);
  }
  await pages[0]!.cancel();
  assert.equal(fanout.size, 1, "a cancelled page is forgotten");
  fanout.close();
  assert.equal(fanout.size, 0);
  assert.equal((await readUntil(pages[1]!, /$^/)).length, 0, "close() ends the stream");
});

Deno.test("EventFanout.open() refuses a page above maxStreams with 503", async () => {
  const fanout = new EventFanout({ maxStreams: 1 });
  const first = fanout.open();
  assert.throws(
    () => fanout.open(),
    (e: unknown) => e instanceof HTTPException && e.status === 503,
  );
  await first.body!.cancel();
  fanout.open();
  fanout.close();
});

Deno.test("EventFanout drops a page that does not read instead of buffering for it", () => {
  const fanout = new EventFanout({ maxBehind: 3 });
  fanout.open();
  for (let seq = 1; seq <= 10; seq++) fanout.publish(event(seq));
  assert.equal(fanout.size, 0);
});
