import assert from "node:assert/strict";
import {
  installSessionHelper,
  SESSION_HELPER_NAME,
  sessionHelperImage,
} from "../../../src/services/agent/_session_helper.ts";
import { runTask } from "../../../src/services/agent/runner.ts";
import { type Task, taskSchema } from "../../../src/services/agent/task.ts";
import { eventually } from "../../_eventually.ts";
import { checkTools, skipPolicy } from "../../e2e/_prereq.ts";

function task(fields: Partial<Task> & { executable: string }): Task {
  return taskSchema.parse({ id: "tsk-1", ...fields });
}

/** Process group and session of `pid` (fields 5 and 6 of /proc/PID/stat). */
async function groupAndSession(pid: number): Promise<[string, string]> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return [fields[2] ?? "", fields[3] ?? ""];
}

const dir = await Deno.makeTempDir({ prefix: "fabric-helper-" });
const helper = await installSessionHelper(dir);
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

Deno.test("sessionHelperImage() is a static ELF executable for x86-64 and AArch64 only", () => {
  for (const [arch, machine] of [["x86_64", 62], ["aarch64", 183]] as const) {
    const image = sessionHelperImage(arch);
    assert.ok(image, arch);
    const view = new DataView(image.buffer);
    assert.deepEqual([...image.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
    assert.equal(view.getUint16(18, true), machine);
    assert.equal(view.getUint16(56, true), 1, "one program header");
    // The entry point is the first byte after the two headers, in the loaded segment.
    assert.equal(view.getBigUint64(24, true), 0x400000n + 120n);
    assert.equal(view.getBigUint64(64 + 32, true), BigInt(image.byteLength));
  }
  assert.equal(sessionHelperImage("riscv64gc"), null);
});

Deno.test("installSessionHelper() writes a private helper that starts a program in a new session", async () => {
  assert.equal(helper, `${dir}/${SESSION_HELPER_NAME}`, "this CI machine is Linux on x86-64");
  const info = await Deno.stat(helper);
  assert.equal(info.mode! & 0o777, 0o700);
  // Installed again (a restarted agent): replaced in place, still working.
  assert.equal(await installSessionHelper(dir), helper);
  assert.deepEqual(
    [...Deno.readDirSync(dir)].map((entry) => entry.name),
    [SESSION_HELPER_NAME],
    "no partial file left behind",
  );
});

Deno.test("installSessionHelper() answers null where it cannot write the helper", async () => {
  const file = await Deno.makeTempFile();
  try {
    assert.equal(await installSessionHelper(`${file}/under-a-file`), null);
  } finally {
    await Deno.remove(file);
  }
});

const mounts = skipPolicy(
  await checkTools("the noexec install test", [["mount", "mount"], ["umount", "mount"]]),
  "the noexec install test",
);

Deno.test({
  name: "installSessionHelper() answers null on a noexec mount",
  ignore: mounts.skip,
  fn: async () => {
    mounts.assertReady();
    const mountPoint = await Deno.makeTempDir();
    const mount = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "noexec,size=1m", "tmpfs", mountPoint],
    }).output();
    assert.ok(mount.success, new TextDecoder().decode(mount.stderr));
    try {
      assert.equal(await installSessionHelper(mountPoint), null);
    } finally {
      await new Deno.Command("umount", { args: [mountPoint] }).output();
      await Deno.remove(mountPoint, { recursive: true });
    }
  },
});

Deno.test("runTask() through the helper: session leader, its argv[0], PATH search, env and cwd", async () => {
  assert.ok(helper);
  const options = { sessionHelper: helper, graceMs: 200 };
  const sleeping = runTask(task({ executable: "sleep", args: ["30"] }), {
    ...options,
    baseEnv: { PATH: "/nonexistent:/bin:/usr/bin" },
  });
  try {
    await eventually(async () =>
      (await Deno.readTextFile(`/proc/${sleeping.pid}/cmdline`)) === "sleep\u000030\u0000"
    );
    const pid = String(sleeping.pid);
    assert.deepEqual(await groupAndSession(sleeping.pid), [pid, pid]);
  } finally {
    sleeping.cancel();
    await sleeping.done;
  }
  // A relative executable and a relative PATH entry are relative to the task's cwd.
  const work = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${work}/bin`);
    await Deno.writeTextFile(`${work}/bin/hello`, '#!/bin/sh\necho "$0 $GREETING $(pwd)"\n', {
      mode: 0o755,
    });
    const byPath = await runTask(
      task({ executable: "hello", cwd: work, env: { GREETING: "hi" } }),
      {
        ...options,
        baseEnv: { PATH: "bin" },
      },
    ).done;
    assert.equal(byPath.exitCode, 0, byPath.error);
    assert.equal(byPath.tail, `bin/hello hi ${work}\n`);
    const relative = await runTask(task({ executable: "./bin/hello", cwd: work }), options).done;
    assert.equal(relative.tail, `./bin/hello  ${work}\n`);
    const missing = await runTask(task({ executable: "./bin/absent", cwd: work }), options).done;
    assert.equal(missing.exitCode, null);
    assert.match(missing.error ?? "", /bin\/absent" is not an executable file/);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("runTask() through the helper: a cancel ends the task's whole group", async () => {
  assert.ok(helper);
  const run = runTask(
    task({ executable: "/bin/sh", args: ["-c", "/bin/sleep 30 & /bin/sleep 30; wait"] }),
    { sessionHelper: helper, graceMs: 500 },
  );
  const live = async () => {
    const out = await new Deno.Command("pgrep", {
      args: ["-g", String(run.pid), "-r", "R,S,D,T"],
      stdout: "piped",
    }).output();
    return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).length;
  };
  await eventually(async () => await live() === 3, { what: "sh and its two sleeps running" });
  run.cancel();
  const result = await run.done;
  assert.equal(result.canceled, true);
  assert.equal(await live(), 0);
});

Deno.test("runTask() starts the task through setsid(1) when the helper is gone", async () => {
  const spare = await Deno.makeTempDir();
  try {
    const gone = await installSessionHelper(spare);
    assert.ok(gone);
    await Deno.remove(gone);
    const result = await runTask(task({ executable: "/bin/echo", args: ["still"] }), {
      sessionHelper: gone,
    }).done;
    assert.equal(result.exitCode, 0, result.error);
    assert.equal(result.tail, "still\n");
  } finally {
    await Deno.remove(spare, { recursive: true });
  }
});

Deno.test("the helper exits 127 when the program cannot be executed", async () => {
  assert.ok(helper);
  const output = await new Deno.Command(helper, { args: ["/nonexistent/tool", "tool"] }).output();
  assert.equal(output.code, 127);
});

const qemu = skipPolicy(
  await checkTools("the AArch64 helper test", [["qemu-aarch64", "qemu-user"]]),
  "the AArch64 helper test",
);

Deno.test({
  name: "the AArch64 helper starts a program in a new session (under qemu-aarch64)",
  ignore: qemu.skip,
  fn: async () => {
    qemu.assertReady();
    const path = `${dir}/setsid-aarch64.elf`;
    await Deno.writeFile(path, sessionHelperImage("aarch64")!, { mode: 0o700 });
    const script = 'read -r pid _ _ _ _ sid _ < /proc/self/stat; echo "$$ $sid $0"';
    const output = await new Deno.Command("qemu-aarch64", {
      args: [path, "/bin/sh", "argv-zero", "-c", script],
      stdout: "piped",
    }).output();
    const [pid, sid, argv0] = new TextDecoder().decode(output.stdout).trim().split(" ");
    assert.equal(output.code, 0);
    assert.equal(pid, sid);
    assert.equal(argv0, "argv-zero");
  },
});
