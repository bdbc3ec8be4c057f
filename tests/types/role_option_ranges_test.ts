import assert from "node:assert/strict";
import {
  checkRoleOptions,
  ROLE_OPTION_SCHEMAS,
  roleOptionInfo,
} from "../../src/types/role_options.ts";
import { agentSettings } from "../../src/services/agent/agent_role.ts";
import { queueSettings } from "../../src/services/queue/queue_role.ts";
import { brokerOptionsOf } from "../../src/services/pubsub/pubsub_role.ts";
import { Broker } from "../../src/services/pubsub/broker.ts";
import { pilotManagerSettings } from "../../src/services/pilot_manager/pilot_manager_role.ts";
import type { Role } from "../../src/types/mod.ts";
import { FakeSink } from "../services/pubsub/_fake_sink.ts";

const AGENT = { queue: "que-1a2b3c4d", pubsub: "pub-1a2b3c4d" };

/** What each role does with its options when it starts, up to its first subscriber. */
const START: Partial<Record<Role, (options: Record<string, string>) => void>> = {
  agent: (options) => agentSettings({ ...AGENT, ...options }),
  queue: (options) => queueSettings(options),
  pubsub: (options) => {
    const broker = new Broker(brokerOptionsOf(options));
    try {
      broker.subscribe(new FakeSink(), ["a"]).close();
    } finally {
      broker.close();
    }
  },
  "pilot-manager": (options) => pilotManagerSettings(options),
};

/** Bounds of every numeric option, one either side, and spellings a role may read otherwise. */
const CANDIDATES = [
  "0",
  "1",
  "100",
  "101",
  "999",
  "1000",
  "4096",
  "4097",
  "66559",
  "66560",
  "600000",
  "600001",
  "1000000",
  "1000001",
  "43200000",
  "43200001",
  "100000000",
  "100000001",
  "999999999",
  "1000000000",
  "999999999999",
  "1000000000000",
  "0001",
  "0000000001",
  "000000000001",
  "1e3",
  "1.0",
];

function accepts(check: () => unknown): boolean {
  try {
    check();
    return true;
  } catch {
    return false;
  }
}

Deno.test("checkRoleOptions() passes no number that the role then refuses when it starts", () => {
  for (
    const [role, start] of Object.entries(START) as [Role, (o: Record<string, string>) => void][]
  ) {
    const required = role === "agent" ? AGENT : {};
    const numeric = roleOptionInfo(role).filter((o) => o.type.startsWith("integer"));
    assert.ok(numeric.length > 0, role);
    for (const { name } of numeric) {
      for (const value of CANDIDATES) {
        if (!accepts(() => checkRoleOptions(role, { ...required, [name]: value }))) continue;
        assert.ok(
          accepts(() => start({ [name]: value })),
          `${role} ${name}="${value}" passes the spawn check but the role refuses it`,
        );
      }
    }
  }
});

Deno.test("checkRoleOptions() refuses a pub/sub bufferBytes below 65 KiB, naming the range", () => {
  for (const value of ["1", "1000", "66559"]) {
    assert.throws(
      () => checkRoleOptions("pubsub", { bufferBytes: value }),
      new RegExp(`bufferBytes="${value}" must be a whole number from 66560 to 999999999999`),
    );
  }
  checkRoleOptions("pubsub", { bufferBytes: "66560" });
  new Broker(brokerOptionsOf({ bufferBytes: "66560" })).close();
});

Deno.test("checkRoleOptions() refuses a pub/sub buffer no outbox can hold, naming the range", () => {
  for (const value of ["999999999999", "4294967296", "1000001"]) {
    assert.throws(
      () => checkRoleOptions("pubsub", { buffer: value }),
      new RegExp(`buffer="${value}" must be a whole number from 1 to 1000000`),
    );
  }
  checkRoleOptions("pubsub", { buffer: "1000000" });
  START.pubsub!({ buffer: "1000000" });
});

Deno.test("checkRoleOptions() refuses a queue capacity or maxWaiters over 9 digits, naming the range", () => {
  for (const name of ["capacity", "maxWaiters"]) {
    for (const value of ["1000000000", "0000000001"]) {
      assert.throws(
        () => checkRoleOptions("queue", { [name]: value }),
        new RegExp(`${name}="${value}" must be a whole number from 1 to 999999999`),
      );
    }
    checkRoleOptions("queue", { [name]: "999999999" });
    assert.equal(queueSettings({ [name]: "999999999" })[name as "capacity"], 999_999_999);
  }
});

Deno.test("checkRoleOptions() refuses numbers with more digits than the role reads", () => {
  assert.throws(() => checkRoleOptions("pilot-manager", { maxResubmits: "0001" }), /0 to 100/);
  assert.throws(() => checkRoleOptions("agent", { ...AGENT, cores: "0000000001" }), /1 to 4096/);
});

Deno.test("ROLE_OPTION_SCHEMAS changes nothing in the options it checks", () => {
  const options = { buffer: "2000000" };
  assert.equal(ROLE_OPTION_SCHEMAS.pubsub.safeParse(options).success, false);
  assert.deepEqual(options, { buffer: "2000000" });
});
