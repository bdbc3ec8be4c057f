/**
 * SshConnection and a ControlPath in the user's ssh configuration (docs/ssh.md,
 * "Sites with MFA"), against the real OpenSSH of the test network
 * (docs/testnet.md). Needs root; skips with a message otherwise, and fails
 * instead when FABRIC_E2E=require.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { withTempDir } from "../e2e/_fabric.ts";
import { skipPolicy } from "../e2e/_prereq.ts";
import { checkTestnet, testnetExec, withTestnet } from "../e2e/_testnet.ts";

const { skip, assertReady } = skipPolicy(await checkTestnet(), "ssh user master tests");

const DENO_DIR = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
const HELPER = new URL("./_ssh_user_master.ts", import.meta.url).pathname;

/** Runs the helper in MODE on the desktop, its `~/.ssh` being DIR/ssh with a ControlPath for gateway. */
async function runHelper(
  dir: string,
  mode: "borrow" | "own" | "reopen" | "orphan",
): Promise<Record<string, unknown>> {
  const sshDir = join(dir, "ssh");
  await Deno.mkdir(sshDir, { mode: 0o700 });
  await Deno.copyFile("/var/lib/fabricd-testnet/id_ed25519", join(sshDir, "id_ed25519"));
  await Deno.chmod(join(sshDir, "id_ed25519"), 0o600);
  await Deno.writeTextFile(
    join(sshDir, "config"),
    [
      "Host gateway",
      "  HostName 198.18.1.1",
      "  User root",
      "  IdentityFile ~/.ssh/id_ed25519",
      "  IdentitiesOnly yes",
      "  UserKnownHostsFile /var/lib/fabricd-testnet/known_hosts",
      "  GlobalKnownHostsFile /dev/null",
      "  StrictHostKeyChecking yes",
      "  ControlMaster auto",
      `  ControlPath ${dir}/cm-%C`,
      "  ControlPersist yes",
      "",
    ].join("\n"),
  );
  // ssh reads ~/.ssh from the passwd entry, not $HOME: a private mount
  // namespace puts ours there, and only for the helper.
  const out = await testnetExec("desktop", [
    "unshare",
    "--mount",
    "--",
    "sh",
    "-c",
    'mount --bind "$1" "$HOME/.ssh" && shift && exec "$@"',
    "sh",
    sshDir,
    "env",
    "-u",
    "SSH_AUTH_SOCK",
    `DENO_DIR=${DENO_DIR}`,
    Deno.execPath(),
    "run",
    "--quiet",
    "--allow-all",
    HELPER,
    dir,
    mode,
  ]);
  assert.equal(out.code, 0, `helper ${mode}: ${out.stderr}`);
  return JSON.parse(out.stdout);
}

Deno.test({
  name:
    "SshConnection.open() rides on the master the user opened on their ControlPath and close() leaves it open",
  ignore: skip,
}, async () => {
  assertReady();
  await withTestnet(() =>
    withTempDir(async (dir) => {
      const result = await runHelper(dir, "borrow");
      assert.equal(result.userMaster, 0, "the user's own ssh gateway true");
      assert.notEqual(result.freshLogin, 0, "a new login must fail, as on an MFA site");
      assert.equal(result.exec, "ok");
      assert.equal(result.forwardOpen, true, "forwardRemote() over the user's master");
      assert.deepEqual(result.ownSockets, [], "fabricd opened a master of its own");
      assert.equal(result.forwardAfterClose, false, "close() left our forward on their master");
      assert.equal(result.checkAfterClose, 0, "close() stopped the user's master");
    })
  );
});

Deno.test({
  name:
    "SshConnection.open() opens and stops its own master when none answers on the user's ControlPath",
  ignore: skip,
}, async () => {
  assertReady();
  await withTestnet(() =>
    withTempDir(async (dir) => {
      const result = await runHelper(dir, "own");
      assert.match(
        String(result.refused),
        /refused our ssh login.*no master connection answers on your ControlPath ".*cm-[0-9a-f]+": on a site that asks for MFA, open one first with "ssh gateway true"/,
      );
      assert.equal(result.exec, "ok");
      assert.equal((result.ownSockets as string[]).length, 1, "fabricd's own socket");
      assert.deepEqual(result.ownSocketsAfterClose, [], "close() left fabricd's master");
      assert.equal(result.userPathAfterClose, "stale", "the user's ControlPath was touched");
    })
  );
});

Deno.test({
  name:
    "SshConnection: two owners on one host keep a master each, and a killed master is opened again at the next use",
  ignore: skip,
}, async () => {
  assertReady();
  await withTestnet(() =>
    withTempDir(async (dir) => {
      const result = await runHelper(dir, "reopen");
      assert.equal(result.sockets, 2, "one control socket per owner");
      assert.equal(result.afterOtherClosed, "ok", "closing one owner's master ended the other's");
      assert.equal(result.afterKill, "again", "no new master after the old one was killed");
      assert.equal(result.newGeneration, true, "the reopened master is not a new generation");
    })
  );
});

Deno.test({
  name:
    "SshConnection: the master of a SIGKILLed process runs on, and the same owner's next connection ends it when it closes",
  ignore: skip,
}, async () => {
  assertReady();
  await withTestnet(() =>
    withTempDir(async (dir) => {
      const result = await runHelper(dir, "orphan");
      assert.equal(result.orphaned, 1, "the killed process's master");
      assert.equal(result.whileOpen, 2, "the orphan was ended while its forwards may serve");
      assert.equal(result.afterClose, 0, "a master was left running after close()");
      assert.deepEqual(result.socketsAfterClose, []);
    })
  );
});
