/**
 * Bad input changes nothing: `up`, `init`, `connect`, `ui` and `stop` refuse
 * a bad flag, an empty --fabric or a place they cannot use with the README's
 * exit code and a message that says what to do, before any file is written
 * or anything started; never "Unexpected error".
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stoppedFabric } from "./_stopped_fabric.ts";
import { initFabric } from "../../src/cli/init.ts";
import { runFabricd, withTempDir } from "../e2e/_fabric.ts";

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

const BAD_UP_FLAGS: { flags: string[]; stderr: RegExp }[] = [
  { flags: ["--store", "bogus"], stderr: /Invalid --store "bogus"/ },
  { flags: ["--port", "abc"], stderr: /Invalid --port "abc": .*1 to 65535/ },
  { flags: ["--port", "99999"], stderr: /Invalid --port "99999": .*1 to 65535/ },
  { flags: ["--port", "0"], stderr: /Invalid --port "0"/ },
  { flags: ["--replicas", "2"], stderr: /--replicas needs a shared store/ },
  { flags: ["--replicas", "0"], stderr: /Invalid --replicas "0"/ },
  { flags: ["--heartbeat-ms", "x"], stderr: /Invalid --heartbeat-ms "x": .*50 to 600000/ },
  { flags: ["--heartbeat-ms", "0"], stderr: /Invalid --heartbeat-ms "0": .*50 to 600000/ },
  { flags: ["--heartbeat-ms", "600001"], stderr: /Invalid --heartbeat-ms "600001"/ },
  { flags: ["--fabric="], stderr: /Empty --fabric/ },
  { flags: ["--fabric", ""], stderr: /Empty --fabric/ },
];

Deno.test("upCommand() checks every flag before it creates a fabric or starts anything", async () => {
  await withTempDir(async (tmp) => {
    const dir = join(tmp, "new");
    for (const { flags, stderr } of BAD_UP_FLAGS) {
      const out = await runFabricd(["up", "--dir", dir, ...flags]);
      const what = `up ${flags.join(" ")}: code ${out.code}\n${out.stdout}\n${out.stderr}`;
      assert.equal(out.code, 64, what);
      assert.match(out.stderr, stderr, what);
      assert.doesNotMatch(
        out.stdout + out.stderr,
        /Created fabric|Unexpected error|--listen/,
        what,
      );
      assert.ok(!(await exists(dir)), `${what}\nup created ${dir}`);
    }
  });
});

Deno.test("fabricd --role refuses a heartbeat, TTL or store out of range with 64, before it starts", async () => {
  await withTempDir(async (dir) => {
    for (
      const [flags, stderr] of [
        [
          ["--heartbeat-ms", "0"],
          /Invalid --heartbeat-ms "0": give a whole number from 50 to 600000/,
        ],
        [["--ttl-ms", "99"], /Invalid --ttl-ms "99": give a whole number from 100 to 3600000/],
        [["--ttl-ms", ""], /Invalid --ttl-ms "": give a whole number/],
        [["--store", "bogus"], /Invalid --store "bogus": use sqlite:PATH or etcd:/],
      ] as const
    ) {
      const out = await runFabricd(["--role", "registry", "--dir", dir, ...flags]);
      const what = `--role registry ${flags.join(" ")}: code ${out.code}\n${out.stderr}`;
      assert.equal(out.code, 64, what);
      assert.match(out.stderr, stderr, what);
      assert.deepEqual([...Deno.readDirSync(dir)], [], `${what}\nit wrote to ${dir}`);
    }
  });
});

Deno.test("an empty --fabric is a usage error and never falls back to the default fabric", async () => {
  await withTempDir(async (home) => {
    // The default fabric, which "--fabric ''" must not be taken for.
    const fabric = await stoppedFabric(join(home, ".fabric"));
    const before = await Deno.readTextFile(fabric);
    const env = { HOME: home, FABRIC_FILE: "" };
    for (
      const args of [
        ["up", "--fabric", ""],
        ["init", "--fabric="],
        ["init", "--force", "--fabric", ""],
        ["connect", "--fabric", ""],
        ["ui", "--fabric", ""],
      ]
    ) {
      const out = await runFabricd(args, { env });
      const what = `${args.join(" ")}: code ${out.code}\n${out.stdout}\n${out.stderr}`;
      assert.equal(out.code, 64, what);
      assert.match(out.stderr, /Empty --fabric: give the fabric file's path/, what);
    }
    // stop and status load the fabric through context.ts: a usage error there too.
    for (const args of [["stop", "--all", "--fabric", ""], ["status", "--fabric="]]) {
      const out = await runFabricd(args, { env });
      const what = `${args.join(" ")}: code ${out.code}\n${out.stdout}\n${out.stderr}`;
      assert.equal(out.code, 64, what);
      assert.match(out.stderr, /Empty --fabric/, what);
      assert.doesNotMatch(out.stderr, /reg-0000dead|does not answer|Unexpected error/, what);
    }
    assert.equal(await Deno.readTextFile(fabric), before, "the default fabric is untouched");
  });
});

Deno.test("initCommand() exits 73 naming the path when the fabric cannot be created", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "a-file");
    await Deno.writeTextFile(file, "");
    const cases = [
      { path: join(file, "fabric.yaml"), why: /is a file, not a directory/ },
      { path: join(file, "sub", "fabric.yaml"), why: /is a file, not a directory/ },
      ...(Deno.build.os === "linux"
        ? [{ path: "/proc/1/nope/fabric.yaml", why: /No such file or directory/ }]
        : []),
    ];
    for (const { path, why } of cases) {
      for (const command of ["init", "up"]) {
        const out = await runFabricd([command, "--fabric", path]);
        const what = `${command} --fabric ${path}: code ${out.code}\n${out.stdout}\n${out.stderr}`;
        assert.equal(out.code, 73, what);
        assert.match(out.stderr, new RegExp(`Cannot create fabric file "${path}": `), what);
        assert.match(out.stderr, why, what);
        assert.match(out.stderr, /give a --fabric \(or --dir\) in a directory you can write/, what);
        assert.doesNotMatch(out.stderr, /Unexpected error/, what);
      }
    }
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a-file"]);
  });
});

Deno.test("connectCommand() exits 78 on a fabric that was never brought up, like every command", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    await initFabric(fabric);
    for (const command of ["connect", "status"]) {
      const out = await runFabricd([command, "--fabric", fabric]);
      const what = `${command}: code ${out.code}\n${out.stdout}\n${out.stderr}`;
      assert.equal(out.code, 78, what);
      assert.match(out.stderr, /names no registry: start the fabric with "fabricd up"/, what);
      assert.doesNotMatch(out.stderr, /Unexpected error/, what);
    }
  });
});

Deno.test("uiCommand() refuses a bad --listen with 64 and a busy one with 78, writing no token", async () => {
  await withTempDir(async (dir) => {
    const fabric = await stoppedFabric(dir);
    const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (busy.addr as Deno.NetAddr).port;
    try {
      const cases = [
        { listen: "999.1.1.1:80", code: 64, stderr: /Invalid --listen "999\.1\.1\.1:80"/ },
        { listen: "1.2.3:80", code: 64, stderr: /Invalid --listen "1\.2\.3:80"/ },
        { listen: "127.0.0.1:70000", code: 64, stderr: /Invalid --listen/ },
        {
          listen: `127.0.0.1:${port}`,
          code: 78,
          stderr: new RegExp(
            `Cannot listen on 127\\.0\\.0\\.1:${port}: .*in use.*: give another --listen`,
            "i",
          ),
        },
      ];
      for (const c of cases) {
        const out = await runFabricd(["ui", "--listen", c.listen, "--fabric", fabric]);
        const what = `ui --listen ${c.listen}: code ${out.code}\n${out.stdout}\n${out.stderr}`;
        assert.equal(out.code, c.code, what);
        assert.match(out.stderr, c.stderr, what);
        assert.doesNotMatch(out.stdout + out.stderr, /Unexpected error|login\?token/, what);
      }
    } finally {
      busy.close();
    }
    assert.ok(!(await exists(join(dir, "ui.token"))), "no token file was written");
  });
});
