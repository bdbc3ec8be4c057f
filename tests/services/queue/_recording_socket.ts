/**
 * A queue socket session over a sink that records what it sends (and reads
 * everything at once: nothing waits unread), for the session's unit tests.
 */
import { QueueSocket } from "../../../src/services/queue/_ws_session.ts";
import type { QueueService } from "../../../src/services/queue/queue.ts";
import type { QueueServerFrame } from "../../../src/types/queue_wire.ts";

/** A session of `queues` on queue `name`, and the frames it sent. */
export function recordingSocket(
  queues: QueueService,
  name = "jobs",
): { socket: QueueSocket; sent: QueueServerFrame[] } {
  const sent: QueueServerFrame[] = [];
  const socket = new QueueSocket(queues, name, {
    send: (frame) => sent.push(frame),
    close: () => {},
    bufferedAmount: 0,
  }, 1024 * 1024);
  return { socket, sent };
}
