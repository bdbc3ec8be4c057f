/**
 * Proof that nothing is fetched: a desktop fabric run from this checkout's
 * image (built here, outside the test network), with empty `HOME` and
 * `DENO_DIR`, grows desktop -> gateway -> head -> compute1 over the real
 * OpenSSH and runs a task on compute1. Every host of the test network counts
 * and drops, with nftables, any packet that leaves for somewhere other than the
 * test network or loopback, and every DNS query: the test fails unless all
 * those counters stay at zero.
 */
import assert from "node:assert/strict";
import { checkoutImageDir, withDesktopFabric } from "./_desktop_fabric.ts";
import { skipPolicy } from "./_prereq.ts";
import { checkTestnet, run, TESTNET_HOSTS, withTestnet } from "./_testnet.ts";

const { skip, assertReady } = skipPolicy(await checkTestnet(), "offline growth e2e test");

const TRAP_TABLE = "fabricd_offline_trap";

/** Counts and drops traffic out of the test network on every host. */
async function trapOutsideTraffic(): Promise<void> {
  const ruleset = `table inet ${TRAP_TABLE} {
  chain output {
    type filter hook output priority -10; policy accept;
    udp dport 53 counter drop comment "dns"
    tcp dport 53 counter drop comment "dns"
    ip daddr { 127.0.0.0/8, 198.18.0.0/15 } accept
    meta nfproto ipv4 counter drop comment "outside"
    ip6 daddr 2000::/3 counter drop comment "outside"
  }
}
`;
  for (const host of TESTNET_HOSTS) {
    const file = await Deno.makeTempFile({ prefix: "fabricd-trap-" });
    try {
      await Deno.writeTextFile(file, ruleset);
      const out = await run("ip", ["netns", "exec", `fab-${host}`, "nft", "-f", file]);
      assert.equal(out.code, 0, `nft on ${host}: ${out.stderr}`);
    } finally {
      await Deno.remove(file);
    }
  }
}

/** The packets each host's trap counted, by host and rule. */
async function trappedPackets(): Promise<string[]> {
  const seen: string[] = [];
  for (const host of TESTNET_HOSTS) {
    const out = await run("ip", [
      "netns",
      "exec",
      `fab-${host}`,
      "nft",
      "list",
      "table",
      "inet",
      TRAP_TABLE,
    ]);
    assert.equal(out.code, 0, `nft list on ${host}: ${out.stderr}`);
    for (const match of out.stdout.matchAll(/counter packets (\d+) bytes \d+ .*comment "(\w+)"/g)) {
      if (match[1] !== "0") seen.push(`${host}: ${match[1]} packet(s) (${match[2]})`);
    }
  }
  return seen;
}

Deno.test({
  name: "an image run with empty caches grows to compute1 and runs a task there, fetching nothing",
  ignore: skip,
}, async () => {
  assertReady();
  const imageDir = await checkoutImageDir();
  const home = await Deno.makeTempDir({ prefix: "fabricd-offline-home-" });
  const denoDir = await Deno.makeTempDir({ prefix: "fabricd-offline-deno-" });
  try {
    await withTestnet(async () => {
      await trapOutsideTraffic();
      await withDesktopFabric("fabricd-offline-", async ({ fabricd }) => {
        const spawn = async (args: string[]): Promise<string> => {
          const out = await fabricd(["spawn", "--json", ...args], { timeoutS: 120 });
          assert.equal(out.code, 0, `spawn ${args.join(" ")}: ${out.stderr}`);
          return (JSON.parse(out.stdout) as { id: string }).id;
        };
        const gateway = await spawn(["--role", "bridge", "--on", "ssh://gateway"]);
        const head = await spawn(["--role", "bridge", "--on", "ssh://head", "--via", gateway]);
        const queue = await spawn(["--role", "queue", "--via", head]);
        const pubsub = await spawn(["--role", "pubsub", "--via", head]);
        await spawn([
          "--role",
          "agent",
          "--on",
          "ssh://compute1",
          "--via",
          head,
          "--option",
          `queue=${queue}`,
          "--option",
          `pubsub=${pubsub}`,
          "--option",
          "cores=1",
          "--option",
          "via=parent",
        ]);
        const task = await fabricd(
          ["task", "submit", "--wait", "--", "/bin/sh", "-c", "hostname"],
          { timeoutS: 60 },
        );
        assert.equal(task.code, 0, task.stderr);
        assert.match(
          task.stdout,
          /^\s+compute1$/m,
          `the task did not run on compute1:\n${task.stdout}`,
        );
        // Nothing was put into the empty caches: no npm package, no bundle.
        const packages: string[] = [];
        try {
          for await (const entry of Deno.readDir(`${denoDir}/npm`)) packages.push(entry.name);
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        }
        assert.deepEqual(packages, [], "DENO_DIR got npm packages");
        await assert.rejects(Deno.stat(`${home}/.cache/fabricd/sources`));
      }, {
        env: { HOME: home, DENO_DIR: denoDir },
      });
      assert.deepEqual(await trappedPackets(), [], "something tried to leave the test network");
    });
  } finally {
    await Deno.remove(home, { recursive: true }).catch(() => {});
    await Deno.remove(denoDir, { recursive: true }).catch(() => {});
  }
  assert.ok(imageDir.length > 0);
});
