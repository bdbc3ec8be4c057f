import assert from "node:assert/strict";
import {
  checkId,
  type FlagSpec,
  keyValueFlag,
  noMoreArgs,
  parseDuration,
  parseFlags,
  rangeFlag,
} from "../../src/cli/args.ts";
import { CliError, echoed } from "../../src/cli/cli_error.ts";

const SPEC: Record<string, FlagSpec> = {
  fabric: { type: "string" },
  role: { type: "string", multiple: true },
  json: { type: "boolean" },
  follow: { type: "boolean", short: "f" },
};

function refusal(args: string[]): string {
  try {
    parseFlags("status", args, SPEC);
  } catch (error) {
    assert.ok(error instanceof CliError, String(error));
    assert.equal(error.exitCode, 64);
    return error.message;
  }
  throw new Error(`parseFlags accepted ${JSON.stringify(args)}`);
}

Deno.test("parseFlags() reads values, switches, repeated flags and positionals", () => {
  const parsed = parseFlags(
    "status",
    ["id-1", "--fabric", "a.yaml", "--role=agent", "--role", "queue", "--json", "-fh", "id-2"],
    SPEC,
  );
  assert.deepEqual(parsed.flags, {
    fabric: "a.yaml",
    role: ["agent", "queue"],
    json: true,
    follow: true,
    help: true,
  });
  assert.deepEqual(parsed.positionals, ["id-1", "id-2"]);
});

Deno.test("parseFlags() takes everything after -- and a lone - as positionals", () => {
  const parsed = parseFlags("status", ["--json", "-", "--", "--fabric", "-x"], SPEC);
  assert.deepEqual(parsed.flags, { json: true });
  assert.deepEqual(parsed.positionals, ["-", "--fabric", "-x"]);
});

Deno.test("parseFlags() keeps an empty value and the last of a repeated single flag", () => {
  const parsed = parseFlags("status", ["--fabric=", "--fabric=b.yaml"], SPEC);
  assert.equal(parsed.flags.fabric, "b.yaml");
  assert.equal(parseFlags("status", ["--fabric="], SPEC).flags.fabric, "");
});

Deno.test("parseFlags() names the flag and the help command in each usage error", () => {
  assert.equal(refusal(["--bogus"]), 'Unknown flag "--bogus": see "fabricd status --help"');
  assert.equal(refusal(["--toString"]), 'Unknown flag "--toString": see "fabricd status --help"');
  assert.equal(refusal(["-x"]), 'Unknown flag "-x": see "fabricd status --help"');
  assert.equal(refusal(["-fx"]), 'Unknown flag "-fx": see "fabricd status --help"');
  assert.equal(refusal(["--fabric"]), 'Flag "--fabric" needs a value: see "fabricd status --help"');
  assert.equal(
    refusal(["--fabric", "--json"]),
    'Flag "--fabric" needs a value: see "fabricd status --help"',
  );
  assert.equal(refusal(["--json=1"]), 'Flag "--json" takes no value: see "fabricd status --help"');
});

Deno.test("parseFlags() takes a negative number as a flag's value, for the flag's own check to refuse", () => {
  const parsed = parseFlags("status", ["--fabric", "-1"], SPEC);
  assert.equal(parsed.flags.fabric, "-1");
  assert.equal(
    refusal(["--fabric", "-x"]),
    'Flag "--fabric" needs a value: see "fabricd status --help"',
  );
});

Deno.test("keyValueFlag() reads KEY=VALUE pairs and refuses a repeated key", () => {
  const parsed = parseFlags("spawn", ["--option", "a=1", "--option", "b=2", "--option", "a=3"], {
    option: { type: "string", multiple: true },
  });
  const distinct = parseFlags("spawn", ["--option", "a=1", "--option", "b=x=2"], {
    option: { type: "string", multiple: true },
  });
  assert.deepEqual(keyValueFlag(distinct, "option"), { a: "1", b: "x=2" });
  assert.throws(
    () => keyValueFlag(parsed, "option"),
    (error: unknown) => {
      assert.ok(error instanceof CliError);
      assert.equal(error.exitCode, 64);
      assert.equal(error.message, 'Repeated --option "a" ("a=1", then "a=3"): give each key once');
      return true;
    },
  );
});

Deno.test("usage errors repeat at most 200 characters of the input, then an ellipsis", () => {
  const huge = "x".repeat(100_000);
  const capped = (message: string, before: string): void => {
    assert.ok(message.length < 600, `${message.length} characters: ${message.slice(0, 80)}`);
    assert.ok(message.startsWith(before), message.slice(0, 80));
    const shown = /^"([^"]*)…"/.exec(message.slice(before.length - 1))?.[1] ?? "";
    assert.equal(shown.length, 200, message.slice(0, 80));
  };
  capped(refusal([`--${huge}`]), 'Unknown flag "');
  capped(refusal([`-f${huge}`]), 'Unknown flag "');
  const invalid = (f: () => unknown): string => {
    try {
      f();
    } catch (error) {
      assert.ok(error instanceof CliError && error.exitCode === 64, String(error));
      return error.message;
    }
    throw new Error("accepted");
  };
  capped(invalid(() => checkId("service", huge)), 'Invalid service ID "');
  capped(invalid(() => checkId("queue", huge, { flag: "--queue-name" })), 'Invalid queue name "');
  capped(invalid(() => noMoreArgs("ui", [huge])), 'Unexpected "');
  capped(invalid(() => parseDuration(huge, "grace")), 'Invalid --grace "');
  const pairs = parseFlags("x", ["--env", huge], { env: { type: "string", multiple: true } });
  capped(invalid(() => keyValueFlag(pairs, "env")), 'Invalid --env "');
  const limit = parseFlags("x", ["--limit", huge], { limit: { type: "string" } });
  capped(invalid(() => rangeFlag(limit, "limit", { min: 1, max: 9 })), 'Invalid --limit "');
  assert.equal(echoed("short"), "short");
  assert.equal(echoed("y".repeat(200)), "y".repeat(200));
});
