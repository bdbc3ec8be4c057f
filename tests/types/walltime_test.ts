import assert from "node:assert/strict";
import { isWalltime, walltimeMinutes, walltimeSeconds } from "../../src/types/walltime.ts";
import { pilotRequestSchema } from "../../src/types/pilot_schemas.ts";
import { ROLE_OPTION_SCHEMAS } from "../../src/types/role_options.ts";

const ACCEPTED: [string, number][] = [
  ["30", 1800],
  ["90s", 90],
  ["30m", 1800],
  ["2h", 7200],
  ["01:30:00", 5400],
  ["100:00:00", 360_000],
  ["1-00:00:00", 86_400],
  ["2-23:59:59", 2 * 86_400 + 86_399],
];
const REFUSED = [
  "",
  "0",
  "0s",
  "00:00:00",
  "0-00:00:00",
  "05:30",
  "1-24:00:00",
  "1-",
  "2d",
  "soon",
];

Deno.test("walltimeSeconds() reads minutes, units, HH:MM:SS and D-HH:MM:SS, above zero", () => {
  for (const [text, seconds] of ACCEPTED) assert.equal(walltimeSeconds(text), seconds, text);
  for (const text of REFUSED) assert.equal(walltimeSeconds(text), null, text);
});

Deno.test("walltimeMinutes() rounds seconds up to whole minutes for Slurm's --time", () => {
  assert.equal(walltimeMinutes("90s"), 2);
  assert.equal(walltimeMinutes("1:00:01"), 61);
  assert.equal(walltimeMinutes("1-00:00:00"), 1440);
  assert.throws(
    () => walltimeMinutes("1-24:00:00"),
    /Invalid walltime "1-24:00:00": use .*D-HH:MM:SS/,
  );
});

Deno.test("isWalltime() is what the role options, the pilot request and the launcher all take", () => {
  const agent = ROLE_OPTION_SCHEMAS.agent;
  for (const text of [...ACCEPTED.map(([t]) => t), ...REFUSED]) {
    const expected = isWalltime(text);
    const option =
      agent.safeParse({ queue: "que-11111111", pubsub: "pub-11111111", walltime: text })
        .success;
    const pilot = pilotRequestSchema.safeParse({
      queue: "que-11111111",
      pubsub: "pub-11111111",
      walltime: text,
    }).success;
    const launcher = (() => {
      try {
        return walltimeMinutes(text) > 0;
      } catch {
        return false;
      }
    })();
    assert.deepEqual([option, pilot, launcher], [expected, expected, expected], text);
  }
});
