import assert from "node:assert/strict";
import { describePilot } from "../../src/cli/pilot.ts";
import { PilotManager } from "../../src/services/pilot_manager/pilots.ts";
import { serviceRecord } from "../_fixtures.ts";

Deno.test("describePilot() names a running local:// pilot's agent state once", async () => {
  // A manager whose one pilot is a local agent that comes up at once.
  const manager = new PilotManager({
    selfId: "plm-11111111",
    spawn: (_request, hooks) => {
      hooks?.onRecorded?.({ id: "agt-00000001", incarnation: 1 });
      return Promise.resolve({ id: "agt-00000001", endpoint: "http://h:1", state: "ALIVE" });
    },
    record: (id) =>
      Promise.resolve(
        id.startsWith("agt-")
          ? serviceRecord(id, { role: "agent", state: "ALIVE" })
          : serviceRecord(id, { role: "queue", route: ["spw-1", "plm-11111111", id] }),
      ),
    transition: () => Promise.resolve(),
    stopService: () => Promise.resolve(),
    batch: { get: () => undefined, cancel: () => Promise.resolve(false), follow: () => () => {} },
  });
  try {
    await manager.submit({
      on: "local://",
      count: 1,
      cores: 1,
      walltime: "30",
      queue: "que-11111111",
      pubsub: "pub-11111111",
      queueName: "",
      policy: "report",
      sessions: [],
    });
    const [pilot] = await manager.list();
    const line = describePilot(pilot!);
    assert.equal(line.split("agent ALIVE").length - 1, 1, line);
    assert.match(line, /^agt-00000001 RUNNING agent ALIVE \(1 core, local:\/\/, walltime 30\): /);
  } finally {
    await manager.stop();
  }
});
