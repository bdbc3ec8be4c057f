/**
 * Bad command-line input is a usage error (64) found before anything is
 * loaded or sent: service IDs, session IDs, queue names, reasons, actions,
 * pilot flags and stray arguments, on a fabric that never started (whose
 * file names no registry: a late check would exit 78 instead).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { initFabric } from "../../src/cli/init.ts";
import {
  checkId,
  durationFlag,
  idFlag,
  idFlags,
  parseDuration,
  parseFlags,
} from "../../src/cli/args.ts";
import { CliError } from "../../src/cli/cli_error.ts";
import { runFabricd, withTempDir } from "../e2e/_fabric.ts";

const SERVICE_FORM = /give 2-63 characters of a-z, 0-9 and '-', starting with a letter/;

Deno.test("checkId() refuses what the API's ID patterns refuse, with 64 and the form", () => {
  for (const bad of ["zz/../que-75d7a6a2", "BAD/ID", "BAD ID", "", "x", "spw-1a2b?x=1", "Spw-1"]) {
    assert.throws(
      () => checkId("service", bad),
      (e: unknown) =>
        e instanceof CliError && e.exitCode === 64 &&
        e.message.startsWith(`Invalid service ID "${bad}": `) && SERVICE_FORM.test(e.message),
      bad,
    );
  }
  assert.equal(checkId("service", "que-75d7a6a2"), "que-75d7a6a2");
  assert.equal(checkId("session", "my-run.1"), "my-run.1");
  assert.equal(checkId("queue", "tasks"), "tasks");
  assert.throws(() => checkId("session", "a/b"), /Invalid session ID "a\/b": give 1-128/);
  assert.throws(() => checkId("queue", "bad name!"), /Invalid queue name "bad name!": give 1-64/);
});

Deno.test("idFlag() and idFlags() name the flag and a service ID of its role", () => {
  const parsed = parseFlags("x", ["--queue", "a/../b", "--service", "spw-1", "--service", "B"], {
    queue: { type: "string" },
    service: { type: "string", multiple: true },
    manager: { type: "string" },
  });
  assert.throws(
    () => idFlag(parsed, "queue", "service"),
    /^CliError: Invalid service ID "a\/\.\.\/b": --queue takes 2-63 .*\(e\.g\. que-1a2b3c4d\)$/,
  );
  assert.throws(() => idFlags(parsed, "service", "service"), /Invalid service ID "B": --service/);
  assert.equal(idFlag(parsed, "manager", "service"), undefined);
  const empty = parseFlags("x", ["--queue="], { queue: { type: "string" } });
  assert.throws(() => idFlag(empty, "queue", "service"), /Invalid service ID "": --queue/);
});

Deno.test("parseDuration() is the one duration parser: bare seconds, ms, s, m, h and d", () => {
  assert.equal(parseDuration("1d"), 86_400_000);
  assert.equal(parseDuration("90"), 90_000);
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("1.5m"), 90_000);
  assert.throws(() => parseDuration("10 minutes"), /Invalid --since "10 minutes"/);
  const parsed = parseFlags("logs", ["--since", "1d", "--grace", "soon"], {
    since: { type: "string" },
    grace: { type: "string" },
  });
  assert.equal(durationFlag(parsed, "since", 0), 86_400_000);
  assert.throws(() => durationFlag(parsed, "grace", 0), /Invalid --grace "soon"/);
});

interface Case {
  args: string[];
  stderr: RegExp;
}

/** Each exits 64 with its message on a fabric whose file names no registry. */
const USAGE_BEFORE_LOADING: Case[] = [
  { args: ["revoke", "zz/../que-75d7a6a2"], stderr: /Invalid service ID "zz\/\.\.\/que-75d7a6a2"/ },
  { args: ["revoke", "BAD ID"], stderr: /Invalid service ID "BAD ID"/ },
  { args: ["revoke", "spw-1a2b3c4d", "--reason", ""], stderr: /Invalid --reason "": say why/ },
  { args: ["forget", "spw-1a2b3c4d", "BAD/ID"], stderr: /Invalid service ID "BAD\/ID"/ },
  { args: ["restart", "BAD/ID"], stderr: /Invalid service ID "BAD\/ID"/ },
  { args: ["stop", "a/../b"], stderr: /Invalid service ID "a\/\.\.\/b"/ },
  { args: ["logs", "BAD/ID"], stderr: /Invalid service ID "BAD\/ID"/ },
  { args: ["status", "BAD/ID"], stderr: /Invalid service ID "BAD\/ID"/ },
  // An empty ID is refused wherever an ID is taken: "status" never shows the whole tree for it.
  { args: ["status", ""], stderr: /Invalid service ID "": give 2-63/ },
  { args: ["status", "", "--json"], stderr: /Invalid service ID ""/ },
  { args: ["restart", ""], stderr: /Give one service ID/ },
  { args: ["revoke", ""], stderr: /Give one service ID/ },
  { args: ["logs", ""], stderr: /Give the ID of a service/ },
  { args: ["forget", ""], stderr: /Invalid service ID ""/ },
  { args: ["stop", ""], stderr: /Invalid service ID ""/ },
  { args: ["task", "show", ""], stderr: /Give one task ID/ },
  { args: ["pilot", "cancel", ""], stderr: /Give one pilot ID/ },
  { args: ["session", "close", ""], stderr: /Invalid session ID ""/ },
  { args: ["status", "--under", "a b"], stderr: /Invalid service ID "a b": --under takes/ },
  { args: ["events", "--service", "x/y"], stderr: /Invalid service ID "x\/y": --service/ },
  {
    args: ["stop", "spw-1a2b3c4d", "--grace", "11m"],
    stderr: /Invalid --grace "11m": give a duration of at most 10m, such as 500ms, 90s or 10m$/m,
  },
  {
    // The examples fit the flag's range: no "2h or 1d" for a grace of at most 10m.
    args: ["stop", "spw-1a2b3c4d", "--grace", "bogus"],
    stderr: /Invalid --grace "bogus": give a duration of at most 10m, such as 500ms, 90s or 10m$/m,
  },
  {
    args: ["spawn", "--role", "spawner", "--via", "a/../b"],
    stderr: /Invalid service ID "a\/\.\.\/b": --via takes/,
  },
  {
    args: ["spawn", "--role", "spawner", "--session", "bad id"],
    stderr: /Invalid session ID "bad id": --session takes/,
  },
  { args: ["connect", "--session", "x/y"], stderr: /Invalid session ID "x\/y": --session takes/ },
  { args: ["events", "--since", "soon"], stderr: /Invalid --since "soon"/ },
  { args: ["session", "foo"], stderr: /Unknown action "foo": use open, close or list/ },
  { args: ["session", "close"], stderr: /Missing session: "fabricd session close S"/ },
  { args: ["session", "list", "extra"], stderr: /Unexpected "extra"/ },
  { args: ["session", "open", "s 1", "--service", "spw-1a2b"], stderr: /Invalid session ID "s 1"/ },
  {
    args: ["session", "open", "s1", "--service", "spw-1a2b", "--service", "B/x"],
    stderr: /Invalid service ID "B\/x": --service takes/,
  },
  { args: ["task", "foo"], stderr: /Unknown action "foo": use submit, list, show, logs, cancel/ },
  { args: ["task", "submit"], stderr: /Give the command after "--"/ },
  { args: ["task", "list", "--state", "bogus"], stderr: /Invalid --state "BOGUS": use one of/ },
  { args: ["task", "list", "extra"], stderr: /Unexpected "extra"/ },
  // --limit: one message, the range it takes, whatever was wrong.
  {
    args: ["task", "list", "--limit", "abc"],
    stderr: /Invalid --limit "abc": give a whole number from 1 to 1000/,
  },
  {
    args: ["task", "list", "--limit", "0"],
    stderr: /Invalid --limit "0": give a whole number from 1 to 1000/,
  },
  {
    args: ["task", "list", "--limit", "1001"],
    stderr: /Invalid --limit "1001": give a whole number from 1 to 1000/,
  },
  { args: ["task", "show", "a b"], stderr: /Invalid task ID "a b"/ },
  {
    // A 100 KB ID comes back as its first 200 characters and "…", not in full.
    args: ["task", "submit", "--id", `${"t".repeat(100_000)}!`, "--", "/bin/true"],
    stderr: /^fabricd: Invalid task ID "t{200}…": give 1-64 letters, digits/,
  },
  { args: ["revoke", "s".repeat(100_000)], stderr: /^fabricd: Invalid service ID "s{200}…": give/ },
  { args: ["task", "cancel"], stderr: /Give one task ID/ },
  {
    args: ["task", "submit", "--queue-name", "bad name!", "--", "/bin/echo", "hi"],
    stderr: /Invalid queue name "bad name!": --queue-name takes 1-64/,
  },
  {
    args: ["task", "submit", "--queue", "zz/../que-1", "--", "/bin/echo"],
    stderr: /Invalid service ID "zz\/\.\.\/que-1": --queue takes .*que-1a2b3c4d/,
  },
  { args: ["task", "submit", "--timeout", "5s", "--", "/bin/echo"], stderr: /--timeout goes/ },
  // A zero timeout would give up at once, after the task is put: refused before, with the range.
  {
    args: ["task", "submit", "--wait", "--timeout", "0", "--", "/bin/true"],
    stderr: /Invalid --timeout "0": give a duration of at least 1ms, such as 500ms/,
  },
  {
    args: ["task", "submit", "--wait", "--timeout", "0s", "--", "/bin/true"],
    stderr: /Invalid --timeout "0s": give a duration of at least 1ms/,
  },
  { args: ["task", "submit", "--", ""], stderr: /Give the command after "--"/ },
  { args: ["task", "submit", "--cwd", "", "--", "/bin/true"], stderr: /Empty --cwd/ },
  {
    args: ["task", "submit", "--cores", "0", "--", "/bin/true"],
    stderr: /Invalid --cores "0": give a whole number from 1 to 4096/,
  },
  { args: ["pilot", "submit", "--walltime", "25:61:99"], stderr: /Invalid --walltime "25:61:99"/ },
  { args: ["report", "--out", ""], stderr: /Empty --out/ },
  { args: ["spawn", "--role", "spawner", "--on", ""], stderr: /Empty --on: give a launcher URL/ },
  {
    args: ["task", "submit", "--env", "A=1", "--env", "A=2", "--", "/bin/echo"],
    stderr: /Repeated --env "A" \("A=1", then "A=2"\): give each key once/,
  },
  { args: ["pilot", "foo"], stderr: /Unknown action "foo"/ },
  { args: ["pilot", "list", "extra"], stderr: /Unexpected "extra"/ },
  { args: ["pilot", "submit", "--count", "abc"], stderr: /Invalid --count "abc": .*1 to 256/ },
  { args: ["pilot", "submit", "--count", "0"], stderr: /Invalid --count "0"/ },
  { args: ["pilot", "submit", "--cores", "0"], stderr: /Invalid --cores "0": .*1 to 4096/ },
  {
    args: ["pilot", "submit", "--policy", "bogus"],
    stderr: /Invalid --policy "bogus": use resubmit or report/,
  },
  {
    args: ["pilot", "submit", "--walltime", "bogus"],
    stderr: /Invalid --walltime "bogus": give minutes \(30\), a unit/,
  },
  { args: ["pilot", "submit", "--walltime", "0"], stderr: /Invalid --walltime "0"/ },
  {
    args: ["pilot", "submit", "--on", "ftp://y"],
    stderr: /Invalid --on "ftp:\/\/y": use local:\/\/, ssh:\/\//,
  },
  {
    args: ["pilot", "submit", "--on", "slurm://compute?wait=soon"],
    stderr: /Invalid --on "slurm:\/\/compute\?wait=soon": wait must be a number of seconds/,
  },
  { args: ["pilot", "submit", "--walltime", "1-24:00:00"], stderr: /Invalid --walltime/ },
  {
    args: ["pilot", "submit", "--on", "slurm+ssh://h"],
    stderr: /Invalid --on "slurm\+ssh:\/\/h": slurm\+ssh:\/\/ is not built yet: spawn a spawner/,
  },
  {
    args: ["spawn", "--role", "pilot-manager", "--option", "on=ftp://x"],
    stderr: /option on="ftp:\/\/x" is refused: Unknown launcher "ftp:\/\/": use local:\/\//,
  },
  {
    args: ["spawn", "--role", "pilot-manager", "--option", "on=slurm+ssh://h"],
    stderr: /Launcher "slurm\+ssh:\/\/" is not built yet: spawn a spawner on the head node/,
  },
  { args: ["pilot", "submit", "--queue-name", "a b"], stderr: /Invalid queue name "a b"/ },
  { args: ["pilot", "list", "--manager", "X"], stderr: /Invalid service ID "X": --manager/ },
  { args: ["pilot", "cancel", "x/../y"], stderr: /Invalid service ID "x\/\.\.\/y"/ },
];

Deno.test("fabricd refuses bad arguments with 64 before it loads the fabric", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    await initFabric(fabric);
    const before = await Deno.readTextFile(fabric);
    const pending = [...USAGE_BEFORE_LOADING];
    const worker = async (): Promise<void> => {
      for (let c = pending.shift(); c; c = pending.shift()) {
        const dash = c.args.indexOf("--");
        const args = dash < 0
          ? [...c.args, "--fabric", fabric]
          : [...c.args.slice(0, dash), "--fabric", fabric, ...c.args.slice(dash)];
        const out = await runFabricd(args);
        const what = `${c.args.join(" ")}: code ${out.code}\n${out.stdout}${out.stderr}`;
        assert.equal(out.code, 64, what);
        assert.match(out.stderr, c.stderr, what);
        assert.doesNotMatch(out.stderr, /Unexpected error|names no registry|\n\s+at /, what);
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    assert.equal(await Deno.readTextFile(fabric), before, "the fabric file is unchanged");
  });
});

Deno.test("fabricd's help names every flag its command takes", async () => {
  const help = async (...args: string[]): Promise<string> => (await runFabricd(args)).stdout;
  assert.match(await help("task", "--help"), /--fabric FILE/);
  assert.match(await help("pilot", "--help"), /--fabric FILE/);
  assert.match(await help("session", "--help"), /--json/);
  assert.match(await help("--help"), /task submit\|list\|show\|logs\|cancel/);
});

Deno.test("fabricd names a flag given before the command, helps with help CMD, and knows no inherited names", async () => {
  const before = await runFabricd(["--fabric", "x.yaml", "status"]);
  assert.equal(before.code, 64);
  assert.match(before.stderr, /unknown command "--fabric": give the command first, then its flags/);
  const help = await runFabricd(["help", "status"]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^fabricd status \[ID\]/);
  for (const name of ["constructor", "toString", "__proto__", "bogus", ""]) {
    const out = await runFabricd([name]);
    assert.equal(out.code, 64, `${name}: ${out.stderr}`);
    assert.match(out.stderr, new RegExp(`unknown command "${name}"`));
    // "help NAME" of an unknown NAME is the same usage error, with the commands there are.
    const helped = await runFabricd(["help", name]);
    assert.equal(helped.code, 64, `help ${name}: ${helped.stderr}`);
    assert.match(helped.stderr, new RegExp(`unknown command "${name}": use one of init, up, `));
    assert.match(helped.stderr, /status, .*report, help or version/);
    assert.equal(helped.stdout, "", `help ${name}`);
  }
});
