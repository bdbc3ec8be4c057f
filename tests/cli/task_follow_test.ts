/**
 * `task submit --wait`'s follower (`_task_follow.ts`) against a fabric with
 * no agent: its notice and its timeout name the queue, and the queue name
 * when it is not the default.
 */
import assert from "node:assert/strict";
import { followTask } from "../../src/cli/_task_follow.ts";
import type { FabricContext } from "../../src/cli/context.ts";
import type { PubsubSubscription } from "../../src/client/pubsub_client.ts";
import { CliError } from "../../src/cli/cli_error.ts";

/** A registry with no services, and a subscription on which nothing comes. */
function quietFabric(): { context: FabricContext; events: PubsubSubscription } {
  const context = { registry: { list: () => Promise.resolve([]) } } as unknown as FabricContext;
  const events = {
    [Symbol.asyncIterator]: () => ({ next: () => new Promise<never>(() => {}) }),
    close: () => Promise.resolve(),
  } as unknown as PubsubSubscription;
  return { context, events };
}

/** What followTask writes on stderr and the error it ends with, for `queueName`. */
async function waitOn(queueName: string): Promise<{ stderr: string[]; error: unknown }> {
  const { context, events } = quietFabric();
  const stderr: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => stderr.push(args.join(" "));
  try {
    await followTask(context, events, {
      id: "tsk-1",
      queueId: "que-1a2b3c4d",
      queueName,
      json: false,
      timeoutMs: 2100,
    });
    return { stderr, error: undefined };
  } catch (error) {
    return { stderr, error };
  } finally {
    console.error = original;
  }
}

Deno.test("followTask() names a --queue-name no agent reads in its notice and its timeout", async () => {
  const named = await waitOn("nobody");
  assert.deepEqual(named.stderr, [
    'waiting: no agent takes tasks from queue "nobody" of que-1a2b3c4d',
  ]);
  assert.ok(named.error instanceof CliError && named.error.exitCode === 1, String(named.error));
  assert.match(named.error.message, /stays on queue "nobody" of que-1a2b3c4d and runs when/);
  const plain = await waitOn("tasks");
  assert.deepEqual(plain.stderr, ["waiting: no agent takes tasks from queue que-1a2b3c4d"]);
});
