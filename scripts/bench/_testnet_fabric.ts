/**
 * A fabric grown from the testnet's desktop for the SSH benchmarks
 * (`ssh-hop-warm`, `grow-chain`): `fabricd up` started inside the desktop, the
 * driver run against it (`_testnet_driver.ts`), log tails after a failure, and
 * the bookkeeping that lets a benchmark stop (then kill) every process it
 * started.
 * @module
 */
import { join } from "node:path";
import { TESTNET_SCRIPT, testnetExec, type TestnetHost } from "../../tests/e2e/_testnet.ts";
import { round, say, within } from "./_harness.ts";
import { listDir, type LiteRecord, poll } from "./_testnet_common.ts";
import {
  allProcs,
  DENO_DIR,
  fabricdArgv,
  killQuietly,
  type LinkProfile,
  prepareTestnet,
  type ProcRef,
  readProc,
  releaseTestnet,
  runDriver,
  stillThere,
} from "./_testnet_host.ts";

/** `lines` indented, each cut to 400 characters, for log tails. */
function indent(lines: string[]): string {
  return lines.map((l) => `    ${l.slice(0, 400)}`).join("\n");
}

/**
 * A fabric grown from the testnet's desktop: `fabricd up` running inside it
 * (with the machine's Deno cache), a fabric file in a scratch directory, and
 * bookkeeping of every process it started, so that all of them can be
 * stopped and, if need be, killed at the end.
 */
export class TestnetFabric {
  readonly name: string;
  readonly dir: string;
  readonly fabric: string;
  #up: Deno.ChildProcess;
  /** Every service the fabric ever had, by ID. */
  #records = new Map<string, LiteRecord>();
  /** Processes started by our services (ssh masters and sessions), seen while they ran. */
  #children = new Map<string, ProcRef>();
  #services = new Map<string, ProcRef>();
  #imageDir: string;

  private constructor(name: string, dir: string, up: Deno.ChildProcess, imageDir: string) {
    this.#imageDir = imageDir;
    this.name = name;
    this.dir = dir;
    this.fabric = join(dir, "fabric.yaml");
    this.#up = up;
  }

  /**
   * Brings the testnet up (building the image first) and starts the desktop
   * fabric on it; takes the testnet down again when the fabric cannot start.
   * Pair with {@linkcode shutDown} and `releaseTestnet()`.
   * @throws {BenchStepError} when the testnet or the fabric cannot start.
   */
  static async onTestnet(name: string, profile: LinkProfile = "lan"): Promise<TestnetFabric> {
    const imageDir = await prepareTestnet(name, profile);
    try {
      return await TestnetFabric.start(name, imageDir);
    } catch (error) {
      await releaseTestnet(name);
      throw error;
    }
  }

  /**
   * Starts `fabricd up` in the desktop and waits for its root spawner.
   * @throws {BenchStepError} when it does not come up (log tails are printed).
   */
  static async start(name: string, imageDir: string): Promise<TestnetFabric> {
    const dir = await Deno.makeTempDir({ prefix: "fabricd-bench-net-" });
    const script = 'exec "$@" >"$LOG" 2>&1';
    const up = new Deno.Command(TESTNET_SCRIPT, {
      args: [
        "exec",
        "desktop",
        "env",
        `DENO_DIR=${DENO_DIR}`,
        `LOG=${join(dir, "up.log")}`,
        "sh",
        "-c",
        script,
        "sh",
        ...fabricdArgv(imageDir, ["up", "--dir", dir, "--heartbeat-ms", "1000"]),
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const fabric = new TestnetFabric(name, dir, up, imageDir);
    say(name, `fabricd up in the desktop, state in ${dir}`);
    const started = performance.now();
    try {
      fabric.remember(
        await fabric.driver<LiteRecord[]>("desktop", ["wait", fabric.fabric], 90_000),
      );
    } catch (error) {
      await fabric.showLogs([]);
      await fabric.shutDown();
      throw error;
    }
    say(name, `fabric up (root spawner ALIVE) after ${round(performance.now() - started, 0)} ms`);
    return fabric;
  }

  /** Runs a driver command on `host` (the commands are listed in `_testnet_driver.ts`). */
  driver<T>(host: TestnetHost, args: string[], timeoutMs: number): Promise<T> {
    return runDriver<T>(this.name, host, args, timeoutMs);
  }

  /** Notes records (and the processes they and their children are) for the clean-up. */
  remember(records: LiteRecord[]): void {
    for (const record of records) {
      this.#records.set(record.id, record);
      const proc = record.pid > 0 ? readProc(record.pid) : null;
      if (proc && proc.cmdline.includes(record.id)) this.#services.set(record.id, proc);
    }
    this.noteChildren();
  }

  /**
   * Notes every process descending from one of our services or from `fabricd
   * up` (ssh masters, launch sessions), while they are still attached to it.
   */
  noteChildren(): void {
    const roots = new Set([...this.#services.values()].map((p) => p.pid));
    if (this.#up.pid > 0) roots.add(this.#up.pid);
    const procs = allProcs();
    let grew = true;
    while (grew) {
      grew = false;
      for (const proc of procs) {
        if (roots.has(proc.ppid) && !roots.has(proc.pid)) {
          roots.add(proc.pid);
          grew = true;
          const key = `${proc.pid}/${proc.start}`;
          if (!this.#children.has(key)) this.#children.set(key, proc);
        }
      }
    }
  }

  /** IDs of the services we know of on `host`, for log tails. */
  idsOn(host: string): string[] {
    return [...this.#records.values()].filter((r) => r.host === host).map((r) => r.id);
  }

  /**
   * Prints the ends of the desktop's fabric logs and of the logs in
   * `~/.cache/fabricd/logs/` on each of `hosts` (ours by ID, else the newest).
   */
  async showLogs(hosts: TestnetHost[]): Promise<void> {
    const tail = async (path: string): Promise<string> => {
      const text = await Deno.readTextFile(path).catch(() => "");
      return indent(text.trim().split("\n").slice(-12));
    };
    say(this.name, `--- ${join(this.dir, "up.log")}:\n${await tail(join(this.dir, "up.log"))}`);
    for (const name of await listDir(join(this.dir, "logs"))) {
      const path = join(this.dir, "logs", name);
      say(this.name, `--- desktop ${path}:\n${await tail(path)}`);
    }
    for (const host of hosts) {
      const ids = this.idsOn(host).filter((id) => /^[a-z0-9-]+$/.test(id));
      const pick = ids.length > 0
        ? ids.map((id) => `logs/${id}.log`).join(" ")
        : "$(ls -t logs/*.log 2>/dev/null | head -n 3)";
      const out = await testnetExec(host, [
        "sh",
        "-c",
        `cd "$HOME/.cache/fabricd" 2>/dev/null || { echo "(no ~/.cache/fabricd)"; exit 0; }; ` +
        `for f in ${pick}; do [ -f "$f" ] || continue; echo "== $f"; tail -n 12 "$f"; done`,
      ]);
      const text = indent((out.stdout + out.stderr).trimEnd().split("\n"));
      say(this.name, `--- ${host} ~/.cache/fabricd/logs:\n${text}`);
    }
  }

  /**
   * Stops every service through the fabric (`fabricd stop --all`), ends
   * `fabricd up`, and kills whatever we started that is still running.
   * Never throws.
   */
  async shutDown(): Promise<void> {
    this.noteChildren();
    const stop = await testnetExec("desktop", [
      "env",
      `DENO_DIR=${DENO_DIR}`,
      ...fabricdArgv(this.#imageDir, ["stop", "--all", "--fabric", this.fabric]),
    ]).catch((error) => ({ code: -1, stdout: "", stderr: String(error) }));
    say(
      this.name,
      `fabricd stop --all: exit ${stop.code} ${(stop.stdout + stop.stderr).trim().split("\n")[0]}`,
    );
    killQuietly(this.#up, "SIGTERM");
    const ended = await within(this.#up.status, 15_000, null);
    if (ended === null) {
      say(this.name, "fabricd up did not end within 15 s of SIGTERM: killing it");
      killQuietly(this.#up, "SIGKILL");
      await this.#up.status;
    }
    const ours = [...this.#services.values(), ...this.#children.values()];
    let left = ours;
    await poll(() => {
      left = left.filter(stillThere);
      return left.length === 0 ? true : undefined;
    }, { timeoutMs: 5_000, intervalMs: 100 });
    for (const proc of left) {
      say(this.name, `left behind, killing pid ${proc.pid}: ${proc.cmdline.slice(0, 160)}`);
      killQuietly(proc.pid, "SIGKILL");
    }
    say(
      this.name,
      left.length === 0
        ? `all ${ours.length} processes we started have ended`
        : `${left.length} of ${ours.length} processes we started had to be killed`,
    );
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /** Processes we started that are still running (for checks between rounds). */
  leftovers(ids: string[]): ProcRef[] {
    const refs = ids.map((id) => this.#services.get(id)).filter((p): p is ProcRef => !!p);
    return refs.filter(stillThere);
  }

  /**
   * Processes noted as children of our services that outlived their parent
   * service (an orphaned ssh master, say); kills them and returns them.
   */
  killOrphans(): ProcRef[] {
    const orphans: ProcRef[] = [];
    for (const [key, proc] of this.#children) {
      const now = readProc(proc.pid);
      if (!now || now.start !== proc.start) {
        this.#children.delete(key);
        continue;
      }
      const parentAlive = [...this.#services.values()].some((s) =>
        s.pid === now.ppid && stillThere(s)
      ) || now.ppid === this.#up.pid ||
        [...this.#children.values()].some((c) => c.pid === now.ppid && stillThere(c));
      if (!parentAlive) {
        orphans.push(proc);
        killQuietly(proc.pid, "SIGKILL");
        this.#children.delete(key);
      }
    }
    return orphans;
  }
}
