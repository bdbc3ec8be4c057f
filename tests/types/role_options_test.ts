import assert from "node:assert/strict";
import {
  checkRoleOptions,
  formatRoleOptions,
  roleOptionInfo,
  RoleOptionsError,
} from "../../src/types/role_options.ts";
import { agentSettings } from "../../src/services/agent/agent_role.ts";
import { queueSettings } from "../../src/services/queue/queue_role.ts";
import { brokerOptionsOf } from "../../src/services/pubsub/pubsub_role.ts";
import { Broker } from "../../src/services/pubsub/broker.ts";
import { pilotManagerSettings } from "../../src/services/pilot_manager/pilot_manager_role.ts";
import { ROLES } from "../../src/types/mod.ts";

const AGENT = { queue: "que-1a2b3c4d", pubsub: "pub-1a2b3c4d" };

Deno.test("checkRoleOptions() refuses a misspelt or unknown option and lists the valid ones", () => {
  for (const bad of [{ ...AGENT, core: "4" }, { ...AGENT, bogus: "1" }]) {
    assert.throws(() => checkRoleOptions("agent", bad), (error: Error) => {
      assert.ok(error instanceof RoleOptionsError);
      assert.match(error.message, /unknown option "(core|bogus)"/);
      assert.match(error.message, /Valid options:\n {2}queue=service ID/);
      assert.match(error.message, /cores=integer 1-4096/);
      return true;
    });
  }
});

Deno.test("checkRoleOptions() refuses a missing required option and a bad value, naming each", () => {
  assert.throws(
    () => checkRoleOptions("agent", { pubsub: "pub-1a2b3c4d", cores: "0" }),
    /option "queue" is required; option cores="0" must be a whole number from 1 to 4096/,
  );
  assert.throws(() => checkRoleOptions("agent", { ...AGENT, via: "sideways" }), /via="sideways"/);
  assert.throws(() => checkRoleOptions("queue", { capacity: "-1" }), /capacity="-1"/);
  assert.throws(() => checkRoleOptions("pilot-manager", { policy: "maybe" }), /policy="maybe"/);
  assert.throws(() => checkRoleOptions("spawner", { cores: "2" }), /unknown option "cores"/);
});

Deno.test("checkRoleOptions() accepts what the roles themselves accept", () => {
  const cases: [Parameters<typeof checkRoleOptions>[0], Record<string, string>, () => unknown][] = [
    [
      "agent",
      {
        ...AGENT,
        cores: "2",
        queueName: "tasks",
        visibilityMs: "5000",
        prefetch: "0",
        graceMs: "100",
        via: "parent",
        walltime: "2h",
      },
      () => agentSettings({ ...AGENT, cores: "2", via: "parent" }),
    ],
    [
      "queue",
      { capacity: "500", maxWaiters: "10" },
      () => queueSettings({ capacity: "500" }),
    ],
    [
      "pubsub",
      { buffer: "8", bufferBytes: "66560", highWaterBytes: "512" },
      () => new Broker(brokerOptionsOf({ buffer: "8", bufferBytes: "66560" })).close(),
    ],
    [
      "pilot-manager",
      { on: "local://", policy: "report", maxResubmits: "0" },
      () => pilotManagerSettings({ on: "local://", policy: "report" }),
    ],
    ["spawner", {}, () => undefined],
  ];
  for (const [role, options, own] of cases) {
    checkRoleOptions(role, options);
    own();
  }
});

Deno.test("formatRoleOptions() gives every option of every role a type, a default and a help line", () => {
  for (const role of ROLES) {
    for (const info of roleOptionInfo(role)) {
      assert.ok(info.type && info.default && info.help, `${role} ${info.name}`);
    }
    assert.ok(formatRoleOptions(role).length > 0);
  }
  assert.match(formatRoleOptions("agent"), /graceMs=integer ms, 0-600000 +.*\(default: 10000\)/);
  assert.match(formatRoleOptions("bridge"), /takes no options/);
});

Deno.test("checkRoleOptions() and pilotManagerSettings() refuse an on= that no launcher takes", () => {
  const cases: [string, RegExp][] = [
    ["ftp://x", /Unknown launcher "ftp:\/\/": use local:\/\/, ssh:\/\//],
    ["slurm+ssh://h", /slurm\+ssh:\/\/" is not built yet: spawn a spawner on the head node/],
    ["local://h", /local:\/\/ takes no host or path/],
    ["nonsense", /use local:\/\//],
  ];
  for (const [on, message] of cases) {
    assert.throws(() => checkRoleOptions("pilot-manager", { on }), (error: Error) => {
      assert.ok(error instanceof RoleOptionsError, on);
      assert.match(
        error.message,
        new RegExp(`option on="${on.replaceAll("+", "\\+")}" is refused`),
      );
      assert.match(error.message, message);
      return true;
    });
    assert.throws(() => pilotManagerSettings({ on }), TypeError, on);
  }
  for (const on of ["local://", "ssh://me@head:2222", "slurm://", "slurm://compute"]) {
    checkRoleOptions("pilot-manager", { on });
    assert.equal(pilotManagerSettings({ on }).on, on);
  }
});
