import assert from "node:assert/strict";
import { explainSshFailure, sshUnreachable } from "../../src/launchers/ssh_failure.ts";

// What OpenSSH 9.2 printed against the testnet's gateway (LogLevel ERROR).
const CHANGED = `@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:WKFOrGp3QHwdkiF9iSN5s3RyKz5C+pFluVtpgh7h8W4.
Please contact your system administrator.
Add correct host key in /tmp/kh_bad to get rid of this message.
Offending ED25519 key in /tmp/kh_bad:2
  remove with:
  ssh-keygen -f "/tmp/kh_bad" -R "198.18.1.1"
Host key for 198.18.1.1 has changed and you have requested strict checking.
Host key verification failed.
`;
const UNKNOWN_STRICT =
  `No ED25519 host key is known for 198.18.1.1 and you have requested strict checking.
Host key verification failed.
`;
// StrictHostKeyChecking ask (the default) under BatchMode: no question, one line.
const UNKNOWN_ASK = "Host key verification failed.\n";

Deno.test("explainSshFailure() says the host key changed when it does not match known_hosts", () => {
  assert.equal(
    explainSshFailure("login1", CHANGED),
    'Host key of login1 does not match known_hosts: if the host was reinstalled, check its new key and remove the old one with "ssh-keygen -R login1"',
  );
});

Deno.test("explainSshFailure() says how to add a host that is not in known_hosts", () => {
  const unknown =
    'login1 is not in known_hosts: connect once with "ssh login1" to check and accept its key, or add it with ssh-keyscan';
  assert.equal(explainSshFailure("login1", UNKNOWN_STRICT), unknown);
  assert.equal(explainSshFailure("login1", UNKNOWN_ASK), unknown);
  assert.equal(
    explainSshFailure(
      "login1",
      "No RSA host key is known for login1 and you have requested strict checking.\nHost key verification failed.\n",
    ),
    unknown,
  );
});

Deno.test("explainSshFailure() keeps its advice for a refused login", () => {
  assert.match(
    explainSshFailure("login1", "root@login1: Permission denied (publickey).\n"),
    /^login1 refused our ssh login/,
  );
});

Deno.test("sshUnreachable() tells a host that cannot be reached from one that refuses", () => {
  for (
    const down of [
      "ssh: Could not resolve hostname nosuchhost: Name or service not known\r\n",
      "ssh: connect to host 198.19.1.2 port 22: No route to host\r\n",
      "ssh: connect to host 10.0.0.1 port 22: Network is unreachable\r\n",
      "ssh: connect to host h port 2222: Connection refused\r\n",
      "ssh: connect to host h port 22: Connection timed out\r\n",
    ]
  ) assert.ok(sshUnreachable(down), down);
  for (
    const refused of [
      CHANGED,
      UNKNOWN_STRICT,
      UNKNOWN_ASK,
      "root@h: Permission denied (publickey).",
    ]
  ) {
    assert.ok(!sshUnreachable(refused), refused);
  }
});
