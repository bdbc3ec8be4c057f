import assert from "node:assert/strict";
import { canBeginIncarnation, canTransition } from "../../src/registry/state_machine.ts";

Deno.test("canTransition() lets an interrupted restart die (resumed later) but not a first spawn", () => {
  for (const from of ["RESTARTING", "BOOTSTRAPPING", "CONFIGURING"] as const) {
    assert.ok(canTransition(from, "DEAD"), from);
  }
  assert.ok(!canTransition("LAUNCHING", "DEAD"));
  assert.ok(canTransition("LAUNCHING", "FAILED"));
});

Deno.test("canBeginIncarnation() starts restarts RESTARTING and never ALIVE -> ALIVE", () => {
  assert.ok(canBeginIncarnation("DEAD", "RESTARTING"));
  assert.ok(canBeginIncarnation("FAILED", "RESTARTING"));
  assert.ok(canBeginIncarnation("", "LAUNCHING"));
  assert.ok(canBeginIncarnation("STOPPED", "ALIVE"));
  assert.ok(!canBeginIncarnation("ALIVE", "ALIVE"));
  assert.ok(!canBeginIncarnation("DEAD", "ALIVE"));
  assert.ok(!canBeginIncarnation("SUSPECT", "RESTARTING"));
  assert.ok(!canBeginIncarnation("RESTARTING", "RESTARTING"));
});
