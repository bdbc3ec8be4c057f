/**
 * The fabric grown over SSH, hop by hop, on the test network (docs/testnet.md):
 * desktop -> gateway -> head -> compute nodes, through the real OpenSSH and the
 * site firewall. Needs root; skips with a message otherwise, and fails instead
 * when FABRIC_E2E=require.
 */
import assert from "node:assert/strict";
import { eventually } from "../_eventually.ts";
import { checkoutImageDir, DENO_DIR, withDesktopFabric } from "./_desktop_fabric.ts";
import {
  checkTestnet,
  TESTNET_ADDR,
  testnetCanConnect,
  testnetExec,
  withTestnet,
} from "./_testnet.ts";
import { skipPolicy } from "./_prereq.ts";
import type { ShipResult } from "../../src/launchers/ship_image.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";

const { skip, assertReady } = skipPolicy(await checkTestnet(), "ssh fabric e2e tests");
async function eventuallyState(
  records: () => Promise<ServiceRecord[]>,
  id: string,
  ok: (record: ServiceRecord) => boolean,
  timeoutMs: number,
): Promise<ServiceRecord> {
  return await eventually(async () => {
    const record = (await records()).find((r) => r.id === id);
    if (record && ok(record)) return record;
    throw new Error(`Service ${id} is ${record?.state} (${record?.lastFailure})`);
  }, { timeoutMs, intervalMs: 200, what: `service ${id} in the expected state` });
}

Deno.test({
  name: "fabricd grows desktop -> gateway -> head -> compute nodes over SSH and keeps it reachable",
  ignore: skip,
}, async (t) => {
  assertReady();
  await withTestnet(async () => {
    await withDesktopFabric("fabricd-ssh-", async ({ dir, fabricd }) => {
      const spawn = async (args: string[]): Promise<string> => {
        const out = await fabricd(["spawn", "--json", ...args]);
        assert.equal(out.code, 0, `spawn ${args.join(" ")}: ${out.stderr}`);
        const result = JSON.parse(out.stdout) as { id: string; state: string };
        assert.equal(result.state, "ALIVE");
        return result.id;
      };
      const records = async (): Promise<ServiceRecord[]> => {
        const out = await fabricd(["status", "--json"]);
        assert.equal(out.code, 0, out.stderr);
        return (JSON.parse(out.stdout) as { services: ServiceRecord[] }).services;
      };
      const root = (await records()).find((r) => r.role === "spawner")!;
      let gateway = "", head = "", c1 = "", c2 = "";

      await t.step(
        "bridges and services come up ALIVE with their real hosts and routes",
        async () => {
          gateway = await spawn(["--role", "bridge", "--on", "ssh://gateway"]);
          head = await spawn(["--role", "bridge", "--on", "ssh://head", "--via", gateway]);
          c1 = await spawn(["--role", "spawner", "--on", "ssh://compute1", "--via", head]);
          c2 = await spawn(["--role", "spawner", "--on", "ssh://compute2", "--via", head]);
          const byId = new Map((await records()).map((r) => [r.id, r]));
          const expect: [string, string, string[]][] = [
            [gateway, "gateway", [root.id, gateway]],
            [head, "head", [root.id, gateway, head]],
            [c1, "compute1", [root.id, gateway, head, c1]],
            [c2, "compute2", [root.id, gateway, head, c2]],
          ];
          for (const [id, host, route] of expect) {
            const record = byId.get(id)!;
            assert.equal(record.state, "ALIVE", id);
            assert.equal(record.host, host, id);
            assert.deepEqual(record.route, route, id);
          }
          const tree = await fabricd(["status"]);
          assert.match(tree.stdout, new RegExp(`└─ ${c2} +spawner +compute2 `));
          // Each hop got deno in its build-time compressed form, from the hop above,
          // and keeps it to pass on.
          for (const host of ["gateway", "head", "compute1"] as const) {
            const packed = await testnetExec(host, [
              "sh",
              "-c",
              "ls ~/.cache/fabricd/*/packed/deno.zst",
            ]);
            assert.equal(packed.code, 0, `${host} has no packed deno: ${packed.stderr}`);
          }
          // The password went on the service's stdin: its environment (which every
          // user of the host can read in /proc) never held it.
          for (const [id] of expect) {
            const pid = byId.get(id)!.pid;
            const environ = (await Deno.readTextFile(`/proc/${pid}/environ`)).split("\0");
            assert.ok(environ.some((e) => e.startsWith("FABRIC_PIN=")), `${id}: not its environ`);
            assert.ok(
              !environ.some((e) => e.startsWith("FABRIC_OTP=")),
              `${id}: FABRIC_OTP in env`,
            );
          }
        },
      );

      await t.step(
        "spawns over one connection take warm processes and leave no listening port behind",
        async () => {
          const listening = async (): Promise<number> => {
            const out = await testnetExec("gateway", ["ss", "-ltnH"]);
            assert.equal(out.code, 0, out.stderr);
            return out.stdout.split("\n").filter(Boolean).length;
          };
          // One spawn first, so the forwards this connection shares exist.
          const first = await spawn(["--role", "spawner", "--on", "ssh://gateway"]);
          assert.equal((await fabricd(["stop", first])).code, 0);
          const before = await listening();
          let warm = 0;
          for (let i = 0; i < 10; i++) {
            const id = await spawn(["--role", "spawner", "--on", "ssh://gateway"]);
            // The spawner's warm pool on the host: a process that waited there took it.
            const log = await testnetExec("gateway", [
              "sh",
              "-c",
              `grep -c 'Warm process handed over' ~/.cache/fabricd/logs/${id}.log || true`,
            ]);
            if (log.stdout.trim() === "1") warm++;
            const stopped = await fabricd(["stop", id]);
            assert.equal(stopped.code, 0, stopped.stderr);
          }
          assert.ok(warm >= 8, `only ${warm} of 10 spawns on gateway took a warm process`);
          await eventually(async () => {
            const now = await listening();
            if (now !== before) {
              throw new Error(`${now} listening ports on gateway, ${before} before`);
            }
            return true;
          }, { timeoutMs: 10_000, what: "no listening port piled up on gateway" });
        },
      );

      await t.step(
        "a signed request from the desktop reaches compute1 through both bridges",
        async () => {
          const out = await fabricd(["status", c1, "--json"]);
          assert.equal(out.code, 0, out.stderr);
          const answer = JSON.parse(out.stdout);
          assert.equal(answer.id, c1);
          assert.equal(answer.host, "compute1");
          assert.equal(answer.parent, head);
        },
      );

      await t.step(
        "compute services heartbeat to the desktop's registry through the bridges",
        async () => {
          const before = (await records()).find((r) => r.id === c2)!.lastHeartbeat;
          const after = await eventually(async () => {
            const record = (await records()).find((r) => r.id === c2)!;
            return record.lastHeartbeat > before && record;
          }, { timeoutMs: 15_000, intervalMs: 200, what: `a heartbeat of ${c2}` });
          assert.equal(after.state, "ALIVE");
        },
      );

      await t.step(
        "a node's identity outside a subtree is refused at the final hop, through the bridges: no spawn, stop or rewrite on compute1, reading only",
        async () => {
          const out = await testnetExec("desktop", [
            "env",
            `DENO_DIR=${DENO_DIR}`,
            Deno.execPath(),
            "run",
            "--quiet",
            "--allow-all",
            new URL("./_attacker.ts", import.meta.url).pathname,
            `${dir}/fabric.yaml`,
            c1,
          ]);
          assert.equal(out.code, 0, out.stderr);
          const seen = JSON.parse(out.stdout.trim().split("\n").at(-1)!);
          assert.deepEqual(seen, { spawn: 403, stop: 403, rewrite: 403, read: 200 });
          const record = (await records()).find((r) => r.id === c1)!;
          assert.equal(record.state, "ALIVE", "compute1 was neither stopped nor rewritten");
          assert.notEqual(record.endpoint, "http://127.0.0.1:9");
        },
      );

      await t.step(
        "compute1's own identity, taken by an attacker who owns the node, is refused above and beside it: no spawn or stop of its parent, its sibling or the registry, no registry rewrite; reading only",
        async () => {
          // The attacker replaces the image's entry point on compute1 (its account owns
          // the cache), so the next service launched there is the attacker's program.
          const work = await Deno.makeTempDir({ prefix: "fabricd-attacker-" });
          const bundle = `${work}/attacker.js`;
          const built = await new Deno.Command(Deno.execPath(), {
            args: [
              "bundle",
              "--quiet",
              "--platform",
              "deno",
              "-o",
              bundle,
              new URL("./_compromised_node.ts", import.meta.url).pathname,
            ],
            stdout: "piped",
            stderr: "piped",
          }).output();
          assert.ok(built.success, new TextDecoder().decode(built.stderr));
          const swap = "set -e; cd ~/.cache/fabricd; rm -f ~/attack.json; " +
            `for f in */js/main.js; do mv "$f" "$f.orig"; cp ${bundle} "$f"; done`;
          assert.equal((await testnetExec("compute1", ["sh", "-c", swap])).code, 0);
          const before = await records();
          let seen: Record<string, unknown>;
          try {
            // A role head keeps no warm process of on compute1: this one starts from the image.
            const spawning = fabricd([
              "spawn",
              "--role",
              "queue",
              "--on",
              "ssh://compute1",
              "--via",
              head,
            ]);
            try {
              seen = await eventually(async () => {
                const text =
                  (await testnetExec("compute1", ["sh", "-c", "cat ~/attack.json"])).stdout;
                return text.trim() !== "" && JSON.parse(text) as Record<string, unknown>;
              }, { timeoutMs: 30_000, intervalMs: 200, what: "the attacker's report" });
            } catch (error) {
              const spawned = await spawning;
              const log = await testnetExec("compute1", [
                "sh",
                "-c",
                "cd ~/.cache/fabricd/logs && tail -n 20 $(ls -t | head -1)",
              ]);
              throw new Error(`${error}\nspawn: ${spawned.stderr}\ncompute1 log: ${log.stdout}`);
            }
            await spawning;
          } finally {
            await testnetExec("compute1", [
              "sh",
              "-c",
              'cd ~/.cache/fabricd && for f in */js/main.js.orig; do mv -f "$f" "${f%.orig}"; done',
            ]);
            await Deno.remove(work, { recursive: true });
          }
          assert.equal(seen.error, undefined, `the attacker did not get to attack: ${seen.error}`);
          // A genuine compute-node identity: its own key, a chain of three links from the root.
          assert.equal(seen.chainLinks, 3);
          assert.deepEqual(seen.route, [root.id, gateway, head, seen.id]);
          assert.equal(seen.sibling, c1);
          assert.deepEqual({ ...seen, id: 0, chainLinks: 0, route: 0, sibling: 0 }, {
            id: 0,
            chainLinks: 0,
            route: 0,
            sibling: 0,
            spawnOnParent: 403,
            stopParent: 403,
            stopSibling: 403,
            rewriteRootSpawner: 403,
            rewriteSibling: 403,
            stopRegistry: 403,
            readRegistry: 200,
          });
          const after = new Map((await records()).map((r) => [r.id, r]));
          for (const was of before.filter((r) => [root.id, head, c1].includes(r.id))) {
            const now = after.get(was.id)!;
            assert.equal(now.state, "ALIVE", `${was.id} is ${now.state}`);
            assert.equal(now.endpoint, was.endpoint, `${was.id}'s record was rewritten`);
          }
        },
      );

      await t.step(
        "the firewall holds: the desktop cannot open a TCP connection to head",
        async () => {
          assert.equal(await testnetCanConnect("desktop", TESTNET_ADDR.head, 22, 3), false);
        },
      );

      await t.step(
        "an unreachable host fails the spawn quickly with the reason and leaves no password",
        async () => {
          const started = Date.now();
          const out = await fabricd([
            "spawn",
            "--role",
            "spawner",
            "--on",
            `ssh://${TESTNET_ADDR.head}`,
          ]);
          assert.equal(out.code, 69, "unreachable (README's table)");
          assert.match(out.stderr, /Cannot connect to 198\.19\.1\.2/);
          assert.ok(Date.now() - started < 15_000, "slower than the connect timeout");
          const spawner = JSON.parse((await fabricd(["status", root.id, "--json"])).stdout);
          assert.equal(spawner.pendingPasswords, 0);
        },
      );

      await t.step("a changed host key is refused with a clear message", async () => {
        const swap = [
          "set -e; cd ~/.ssh; cp known_hosts known_hosts.orig",
          "rm -f /tmp/fake_key_$$; ssh-keygen -q -t ed25519 -N '' -f /tmp/fake_key_$$",
          "key=$(cut -d' ' -f1,2 /tmp/fake_key_$$.pub); rm -f /tmp/fake_key_$$ /tmp/fake_key_$$.pub",
          `sed -i "s|^compute1,.*|compute1,${TESTNET_ADDR.compute1} $key|" known_hosts`,
        ].join("\n");
        assert.equal((await testnetExec("desktop", ["sh", "-c", swap])).code, 0);
        try {
          const out = await fabricd(["spawn", "--role", "spawner", "--on", "ssh://compute1"]);
          assert.equal(out.code, 1);
          assert.match(out.stderr, /Host key of compute1 does not match known_hosts/);
        } finally {
          await testnetExec("desktop", [
            "sh",
            "-c",
            "cd ~/.ssh && mv known_hosts.orig known_hosts",
          ]);
        }
      });

      await t.step("an unwritable image cache is reported clearly", async () => {
        const block = "cd ~/.cache && mv fabricd fabricd.aside && touch fabricd";
        assert.equal((await testnetExec("compute2", ["sh", "-c", block])).code, 0);
        try {
          // A bridge: head keeps a warm spawner on compute2 (loaded, it needs no cache),
          // but no warm bridge, so this one must start from the image.
          const out = await fabricd([
            "spawn",
            "--role",
            "bridge",
            "--on",
            "ssh://compute2",
            "--via",
            head,
          ]);
          assert.equal(out.code, 1);
          assert.match(out.stderr, /Image cache on compute2 is not writable/);
        } finally {
          await testnetExec("compute2", [
            "sh",
            "-c",
            "cd ~/.cache && rm -f fabricd && mv fabricd.aside fabricd",
          ]);
        }
      });

      const shipCheck = async (mode: "forged" | "upgrade"): Promise<unknown> => {
        const out = await testnetExec("desktop", [
          "env",
          `DENO_DIR=${DENO_DIR}`,
          Deno.execPath(),
          "run",
          "--quiet",
          "--allow-all",
          new URL("./_ship_check.ts", import.meta.url).pathname,
          "gateway",
          dir,
          await checkoutImageDir(),
          mode,
        ]);
        assert.equal(out.code, 0, out.stderr);
        return JSON.parse(out.stdout);
      };

      await t.step("an image whose hash does not match is removed and never run", async () => {
        const result = await shipCheck("forged") as { error: string; cache: string[] };
        assert.match(result.error, /does not match its SHA-256/);
        assert.ok(!result.cache.includes("f".repeat(64)), "the forged image was installed");
        assert.ok(
          !result.cache.some((name) => name.startsWith(".tmp-")),
          "a partial copy was left",
        );
      });

      await t.step("an upgrade sends only the files the host lacks, under 0.5 MB", async () => {
        const result = await shipCheck("upgrade") as {
          second: ShipResult;
          version: string;
          warmed: boolean;
          parsed: boolean;
        };
        assert.equal(result.warmed, true, "the throwaway warm process did not end cleanly");
        assert.equal(
          result.parsed,
          true,
          "Deno's cache on the host has no parse of the new version",
        );
        assert.equal(result.second.copied, true);
        assert.ok(result.second.sent < 500_000, `sent ${result.second.sent} bytes`);
        assert.ok(result.second.missingBytes < 500_000, `${result.second.missingBytes} missing`);
        assert.match(result.version, /^fabricd /, "the upgraded image does not run");
      });

      await t.step(
        "a cut link makes compute1's service DEAD; after healing exactly one instance is ALIVE",
        async () => {
          const before = (await records()).find((r) => r.id === c1)!;
          assert.equal(
            (await testnetExec("head", ["ip", "link", "set", "to-compute1", "down"])).code,
            0,
          );
          try {
            await eventuallyState(records, c1, (r) => r.state === "DEAD", 20_000);
            await new Promise((r) => setTimeout(r, 3000)); // restarts fail while the link is down
          } finally {
            await testnetExec("head", ["ip", "link", "set", "to-compute1", "up"]);
          }
          const back = await eventuallyState(records, c1, (r) => r.state === "ALIVE", 90_000);
          assert.ok(back.incarnation >= before.incarnation);
          // A replaced instance learns it at its next heartbeat, or fences itself
          // off when no heartbeat gets through (20 heartbeats): in the end the
          // only process of this ID is the one the registry knows.
          let pids: string[] = [];
          let known = back;
          for (let i = 0; i < 150; i++) {
            known = (await records()).find((r) => r.id === c1)!;
            const ps = await testnetExec("compute1", [
              "sh",
              "-c",
              `pgrep -f 'js/main[.]js --role spawner --id ${c1}' || true`,
            ]);
            pids = ps.stdout.split("\n").filter(Boolean);
            if (known.state === "ALIVE" && pids.length === 1 && pids[0] === String(known.pid)) {
              break;
            }
            await new Promise((r) => setTimeout(r, 300));
          }
          assert.deepEqual(
            pids,
            [String(known.pid)],
            "exactly one live instance, the registered one",
          );
        },
      );

      await t.step("fabricd stop --all stops every service on every host", async () => {
        const out = await fabricd(["stop", "--all"]);
        assert.equal(out.code, 0, out.stderr);
        // The hosts share one PID namespace: one look covers them all.
        let left = "";
        for (let i = 0; i < 100; i++) {
          left =
            (await testnetExec("head", ["sh", "-c", "pgrep -af 'js/main[.]js --role' || true"]))
              .stdout.trim();
          if (left === "") break;
          await new Promise((r) => setTimeout(r, 150));
        }
        // Said in full when it fails: which service, and what its log says.
        const id = /--id (\S+)/.exec(left)?.[1];
        // A service on a host logs in its home's cache, one on the desktop in the fabric's dir.
        const log = id
          ? (await testnetExec("head", [
            "sh",
            "-c",
            `tail -n 40 /var/lib/fabricd-testnet/*/home/.cache/fabricd/logs/${id}.log ` +
            `${dir}/logs/${id}.log 2>/dev/null`,
          ])).stdout
          : "";
        const said = `stop --all said:\n${out.stdout}${out.stderr}`;
        if (left !== "") {
          await Deno.writeTextFile("/tmp/ssh_fabric_left.log", `${left}\n${log}\n${said}`);
        }
        assert.equal(
          left,
          "",
          `fabricd services still running after stop --all:\n${left}\n${log}\n${said}`,
        );
      });
    });
  });
});
