/**
 * The test network itself (scripts/testnet, docs/testnet.md): hosts, ssh hops, the site
 * firewall, private homes, idempotent up and a clean down. Needs root; skips with a message
 * otherwise, and fails instead when FABRIC_E2E=require.
 */
import assert from "node:assert/strict";
import {
  checkTestnet,
  run,
  testnet,
  TESTNET_ADDR,
  TESTNET_HOSTS,
  testnetCanConnect,
  testnetDown,
  testnetExec,
  testnetListen,
  testnetSsh,
  testnetUp,
} from "./_testnet.ts";
import { skipPolicy } from "./_prereq.ts";

const { skip, assertReady } = skipPolicy(await checkTestnet(), "the testnet");

const STATE_DIR = "/var/lib/fabricd-testnet";

function lines(s: string): string[] {
  return s.split("\n").map((l) => l.trim()).filter((l) => l !== "");
}

async function fabNamespaces(): Promise<string[]> {
  const r = await run("ip", ["netns", "list"]);
  return lines(r.stdout).map((l) => l.split(" ")[0] ?? "").filter((n) => n.startsWith("fab-"));
}

/** HOST -> sshd pid, from `scripts/testnet status`. */
async function sshdPids(): Promise<Record<string, string>> {
  const r = await testnet(["status"]);
  const pids: Record<string, string> = {};
  for (const l of lines(r.stdout)) {
    const [host, , pid] = l.split(/\s+/);
    if (host !== undefined && pid !== undefined) pids[host] = pid;
  }
  return pids;
}

Deno.test({
  name: "testnet builds an HPC site when brought up as root",
  ignore: skip,
  async fn(t) {
    assertReady();
    try {
      // Start from nothing, whatever an earlier run left behind.
      await testnetDown();
      await testnetUp();

      await t.step("testnet creates every host's namespace when up runs", async () => {
        assert.deepEqual(
          (await fabNamespaces()).sort(),
          TESTNET_HOSTS.map((h) => `fab-${h}`).sort(),
        );
        const status = await testnet(["status"]);
        assert.equal(status.code, 0, status.stdout + status.stderr);
      });

      await t.step("testnet reports each host's own hostname when exec runs there", async () => {
        for (const host of TESTNET_HOSTS) {
          const r = await testnetExec(host, ["hostname"]);
          assert.equal(r.code, 0, r.stderr);
          assert.equal(r.stdout.trim(), host);
        }
      });

      await t.step("testnet gives each host its own home when exec runs there", async () => {
        for (const host of TESTNET_HOSTS) {
          const r = await testnetExec(host, ["sh", "-c", 'echo "$HOME"; echo ~']);
          assert.equal(r.code, 0, r.stderr);
          const home = `${STATE_DIR}/${host}/home`;
          assert.deepEqual(lines(r.stdout), [home, home]);
        }
      });

      await t.step("testnet connects the desktop to the gateway when it runs ssh", async () => {
        const r = await testnetSsh("gateway", ["hostname"]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), "gateway");
      });

      await t.step("testnet jumps through the gateway when the desktop runs ssh head", async () => {
        const r = await testnetSsh("head", ["sh", "-c", "'hostname; echo $HOME; pwd'"]);
        assert.equal(r.code, 0, r.stderr);
        const home = `${STATE_DIR}/head/home`;
        assert.deepEqual(lines(r.stdout), ["head", home, home]);
      });

      await t.step("testnet jumps twice when the desktop runs ssh to a compute node", async () => {
        for (const host of ["compute1", "compute2"] as const) {
          const r = await testnetSsh(host, ["hostname"]);
          assert.equal(r.code, 0, r.stderr);
          assert.equal(r.stdout.trim(), host);
        }
      });

      await t.step("testnet grows hop by hop when a process on a host runs ssh", async () => {
        const hops = [
          ["gateway", "head"],
          ["gateway", "compute1"],
          ["head", "compute1"],
          ["head", "compute2"],
          ["compute1", "head"],
        ] as const;
        for (const [from, to] of hops) {
          const r = await testnetExec(from, ["ssh", to, "hostname"]);
          assert.equal(r.code, 0, `${from} -> ${to}: ${r.stderr}`);
          assert.equal(r.stdout.trim(), to, `${from} -> ${to}`);
        }
      });

      await t.step("testnet blocks the desktop when it connects straight to head", async () => {
        // There is a route: the firewall, not the routing table, says no.
        const route = await run("ip", ["-n", "fab-desktop", "route", "get", TESTNET_ADDR.head]);
        assert.match(route.stdout, /via 198\.18\.1\.1/);
        assert.equal(await testnetCanConnect("desktop", TESTNET_ADDR.head, 22), false);
      });

      await t.step("testnet blocks the desktop when the gateway listens on 8080", async () => {
        const listener = await testnetListen("gateway", 8080); // the gateway reaches it itself
        try {
          assert.equal(await testnetCanConnect("gateway", TESTNET_ADDR.gateway, 8080), true);
          assert.equal(await testnetCanConnect("desktop", TESTNET_ADDR.gateway, 8080), false);
          assert.equal(await testnetCanConnect("desktop", TESTNET_ADDR.gateway, 22), true);
        } finally {
          await listener.close();
        }
      });

      await t.step(
        "testnet lets compute1 reach head when head listens on a high port",
        async () => {
          const listener = await testnetListen("head", 18080);
          try {
            // Both head's address on compute1's link and its address towards the gateway.
            assert.equal(await testnetCanConnect("compute1", "198.19.11.1", 18080), true);
            assert.equal(await testnetCanConnect("compute1", TESTNET_ADDR.head, 18080), true);
            assert.equal(await testnetCanConnect("compute2", "198.19.12.1", 18080), true);
            // The gateway reaches head's port 22 only.
            assert.equal(await testnetCanConnect("gateway", TESTNET_ADDR.head, 18080), false);
          } finally {
            await listener.close();
          }
        },
      );

      await t.step(
        "testnet lets head reach compute1 when compute1 listens on any port",
        async () => {
          const listener = await testnetListen("compute1", 18081);
          try {
            assert.equal(await testnetCanConnect("head", TESTNET_ADDR.compute1, 18081), true);
            assert.equal(await testnetCanConnect("compute2", TESTNET_ADDR.compute1, 18081), false);
          } finally {
            await listener.close();
          }
        },
      );

      await t.step("testnet blocks the gateway when it connects to compute1", async () => {
        const route = await run("ip", [
          "-n",
          "fab-gateway",
          "route",
          "get",
          TESTNET_ADDR.compute1,
        ]);
        assert.match(route.stdout, /via 198\.19\.1\.2/);
        assert.equal(await testnetCanConnect("gateway", TESTNET_ADDR.compute1, 22), false);
        assert.equal(await testnetCanConnect("compute1", TESTNET_ADDR.compute2, 22), false);
        assert.equal(await testnetCanConnect("head", "198.19.1.1", 22), false);
      });

      await t.step(
        "testnet still blocks the desktop when the desktop's own firewall lets all out",
        async () => {
          // Each host rejects what it may not send; this checks the layer behind that: the
          // gateway's input chain and its forward chain drop what the desktop sends anyway.
          const open = await run("ip", [
            "netns",
            "exec",
            "fab-desktop",
            "nft",
            "insert",
            "rule",
            "inet",
            "fabricd_testnet",
            "output",
            "accept",
          ]);
          assert.equal(open.code, 0, open.stderr);
          const listener = await testnetListen("gateway", 8080);
          try {
            assert.equal(await testnetCanConnect("desktop", TESTNET_ADDR.head, 22, 2), false);
            assert.equal(await testnetCanConnect("desktop", TESTNET_ADDR.gateway, 8080, 2), false);
            assert.equal(
              await testnetCanConnect("desktop", TESTNET_ADDR.compute1, 22, 2),
              false,
            );
          } finally {
            await listener.close();
          }
        },
      );

      await t.step("testnet repairs and keeps its hosts when up runs again", async () => {
        const before = await sshdPids();
        await testnetUp();
        await testnetUp();
        assert.deepEqual(await sshdPids(), before);
        // The rule opened above is gone again.
        const rules = await run("ip", [
          "netns",
          "exec",
          "fab-desktop",
          "nft",
          "list",
          "chain",
          "inet",
          "fabricd_testnet",
          "output",
        ]);
        assert.doesNotMatch(rules.stdout, /^\s*accept\s*$/m);
        const r = await testnetSsh("head", ["hostname"]);
        assert.equal(r.stdout.trim(), "head", r.stderr);
      });

      await t.step(
        "testnet up on a leftover network with lost keys and a forged known_hosts works at once",
        async () => {
          // What an interrupted run can leave: a running network whose state directory lost
          // gateway's host key (made anew by the next up) and a desktop known_hosts edited
          // by a test that never restored it.
          await Deno.remove(`${STATE_DIR}/gateway/ssh_host_ed25519_key`);
          await Deno.remove(`${STATE_DIR}/gateway/ssh_host_ed25519_key.pub`);
          const known = `${STATE_DIR}/desktop/home/.ssh/known_hosts`;
          await Deno.writeTextFile(known, "head,198.19.1.2 ssh-ed25519 AAAAforged\n");
          await testnetUp();
          for (const host of ["gateway", "head"] as const) {
            const r = await testnetSsh(host, ["hostname"]);
            assert.equal(r.code, 0, `${host}: ${r.stderr}`);
            assert.equal(r.stdout.trim(), host);
          }
        },
      );

      await t.step(
        "testnet shapes the desktop-gateway link when up --wan runs, through its relay, and plain up sets it back",
        async () => {
          const qdisc = async (host: "desktop" | "gateway", dev: string): Promise<string> =>
            (await run("ip", ["netns", "exec", `fab-${host}`, "tc", "qdisc", "show", "dev", dev]))
              .stdout;
          const before = await sshdPids();
          await testnetUp({ wan: true });
          try {
            assert.match(await qdisc("desktop", "to-gateway"), /tbf .*rate 100Mbit/);
            assert.match(await qdisc("gateway", "to-desktop"), /tbf .*rate 100Mbit/);
            const relay = Number(await Deno.readTextFile(`${STATE_DIR}/gateway/relay.pid`));
            assert.ok(relay > 0 && (await run("kill", ["-0", String(relay)])).code === 0);
            // ssh (and what jumps through the gateway) goes through the relay unchanged.
            for (const host of ["gateway", "head"] as const) {
              const r = await testnetSsh(host, ["hostname"]);
              assert.equal(r.stdout.trim(), host, r.stderr);
            }
            assert.deepEqual(await sshdPids(), before, "the sshds were kept");
          } finally {
            await testnetUp();
          }
          assert.doesNotMatch(await qdisc("desktop", "to-gateway"), /tbf/);
          assert.doesNotMatch(await qdisc("gateway", "to-desktop"), /tbf/);
          assert.equal(await Deno.stat(`${STATE_DIR}/gateway/relay.pid`).catch(() => null), null);
          const r = await testnetSsh("gateway", ["hostname"]);
          assert.equal(r.stdout.trim(), "gateway", r.stderr);
        },
      );

      await t.step("testnet keeps homes apart when a file is written into ~ on head", async () => {
        const write = await testnetSsh("head", ["sh", "-c", "'echo on-head > ~/only-on-head'"]);
        assert.equal(write.code, 0, write.stderr);
        const onHead = await testnetExec("head", ["sh", "-c", "cat ~/only-on-head"]);
        assert.equal(onHead.stdout.trim(), "on-head", onHead.stderr);
        const onGateway = await testnetExec("gateway", ["sh", "-c", "test -e ~/only-on-head"]);
        assert.equal(onGateway.code, 1);
        const overSsh = await testnetSsh("gateway", ["test", "-e", "only-on-head"]);
        assert.equal(overSsh.code, 1, overSsh.stderr);
        // scp (sftp underneath) lands in the target's home too.
        const copy = await testnetExec("desktop", [
          "sh",
          "-c",
          "echo copied > ~/note && scp -q ~/note head:note-from-desktop",
        ]);
        assert.equal(copy.code, 0, copy.stderr);
        const copied = await testnetExec("head", [
          "cat",
          `${STATE_DIR}/head/home/note-from-desktop`,
        ]);
        assert.equal(copied.stdout.trim(), "copied", copied.stderr);
      });

      await t.step("testnet leaves no namespace and no sshd when down runs", async () => {
        await testnetDown();
        assert.deepEqual(await fabNamespaces(), []);
        const sshds = await run("pgrep", ["-af", "fabricd-testnet"]);
        assert.equal(sshds.code, 1, `still running:\n${sshds.stdout}`);
        await testnetDown(); // nothing up: still fine
        assert.equal((await testnet(["status"])).code, 1);
        assert.equal((await testnetExec("head", ["hostname"])).code, 69);
      });
    } finally {
      await testnetDown();
    }
  },
});

Deno.test({
  name: "testnet exits 64 when the command line is wrong",
  ignore: Deno.build.os !== "linux", // the script is for Linux (and bash 4+)
}, async () => {
  for (
    const args of [
      [],
      ["bogus"],
      ["up", "extra"],
      ["exec"],
      ["exec", "head"],
      [
        "exec",
        "nowhere",
        "true",
      ],
      ["ssh"],
      ["ssh", "desktop"],
    ]
  ) {
    const r = await testnet(args);
    assert.equal(r.code, 64, `scripts/testnet ${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /usage: scripts\/testnet/);
  }
});
