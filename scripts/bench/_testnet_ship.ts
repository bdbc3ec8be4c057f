/**
 * The `ship` command of the driver (`_testnet_driver.ts`), run inside the
 * testnet's desktop for `image-copy-cold`: makes this fabricd's image once,
 * opens one `SshConnection` (ControlMaster) to the host, and times N cold
 * copies (`shipImage` into an emptied `~/.cache/fabricd`) against plain `ssh
 * HOST 'cat >/dev/null' <FILE` and `ssh HOST 'cat >FILE'` over the same
 * master, alternating their order from run to run.
 * @module
 */
import { join } from "node:path";
import { readImageDir } from "../../src/image/image_dir.ts";
import { shipImage, type ShipResult } from "../../src/launchers/ship_image.ts";
import { SshConnection } from "../../src/launchers/ssh_connection.ts";
import { round } from "./_harness.ts";
import {
  BenchStepError,
  EMPTY_CACHE_SH,
  progress,
  type ShipOutput,
  type ShipRun,
  timedCommand,
} from "./_testnet_common.ts";

/** Options of {@linkcode shipCommand}. */
export interface ShipCommandOptions {
  /** Scratch directory: the ssh control socket goes here. */
  dir: string;
  /** The image directory to ship, built outside the test network. */
  imageDir: string;
  /** How many cold copies to time. */
  runs: number;
}

/**
 * `ship DIR HOST N IMAGE_DIR`: N cold copies of the image to `host`, each
 * against plain `ssh cat` of the same bytes in one stream.
 * @throws {BenchStepError} when a copy, a baseline or emptying the cache fails.
 */
export async function shipCommand(host: string, options: ShipCommandOptions): Promise<ShipOutput> {
  const { dir, runs } = options;
  let started = performance.now();
  const image = await readImageDir(options.imageDir);
  const imageMs = performance.now() - started;
  const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;
  progress(
    `image ${image.kind} ${image.hash.slice(0, 12)}: ${
      image.files.map((f) => `${f.name} ${mb(f.size)}`).join(", ")
    } (read in ${round(imageMs, 0)} ms, not counted)`,
  );
  const controlDir = join(dir, "ssh-ship");
  const ssh = new SshConnection({ host }, { controlDir });
  try {
    started = performance.now();
    await ssh.open();
    const openMs = performance.now() - started;
    const sockets: string[] = [];
    for await (const entry of Deno.readDir(controlDir)) sockets.push(join(controlDir, entry.name));
    if (sockets.length !== 1) {
      throw new BenchStepError(`expected one control socket in ${controlDir}, found ${sockets}`);
    }
    const socket = sockets[0]!;
    // Plain ssh riding on the very same master connection: every file's bytes in one stream.
    const plainSsh = (remote: string, what: string): Promise<number> =>
      timedCommand(what, [
        "sh",
        "-c",
        's=$1; h=$2; r=$3; shift 3; cat "$@" | exec ssh -S "$s" -o ControlMaster=no ' +
        '-o BatchMode=yes "$h" "$r"',
        "sh",
        socket,
        host,
        remote,
        ...image.files.map((f) => f.path),
      ]);
    progress(`ControlMaster to ${host} open in ${round(openMs, 0)} ms (not counted)`);
    const out: ShipRun[] = [];
    for (let i = 0; i < runs; i++) {
      const emptied = await ssh.exec(
        `${EMPTY_CACHE_SH} && echo EMPTY`,
      );
      if (!emptied.stdout.includes("EMPTY")) {
        throw new BenchStepError(`cannot empty ~/.cache/fabricd on ${host}: ${emptied.stderr}`);
      }
      await settle();
      const doShip = async (): Promise<[number, ShipResult]> => {
        const t = performance.now();
        const result = await shipImage(image, ssh);
        const ms = performance.now() - t;
        if (!result.copied) throw new BenchStepError(`the image was already on ${host}`);
        return [ms, result];
      };
      const doCat = async (): Promise<[number[], number[]]> => {
        const toNull = await plainSsh("cat >/dev/null", "ssh cat >/dev/null");
        const blob = '"$HOME/.cache/fabricd-bench-blob"';
        const toDisk = await plainSsh(`cat >${blob}`, "ssh cat >file");
        await ssh.exec(`rm -f ${blob}`);
        await settle();
        return [[toNull], [toDisk]];
      };
      // Alternate the order, so drift of the machine's load hits both alike.
      let shipped: [number, ShipResult];
      let cats: [number[], number[]];
      if (i % 2 === 0) {
        shipped = await doShip();
        cats = await doCat();
      } else {
        cats = await doCat();
        shipped = await doShip();
      }
      const [shipMs, result] = shipped;
      const [catNullMs, catDiskMs] = cats;
      const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
      progress(
        `run ${i + 1}: ship ${round(shipMs, 0)} ms (${result.compression}, ${
          mb(result.sent)
        } sent of ${mb(result.bytes)}); ssh cat >/dev/null ${
          round(sum(catNullMs), 0)
        } ms; ssh cat >file ${round(sum(catDiskMs), 0)} ms`,
      );
      out.push({ shipMs, result, catNullMs, catDiskMs });
    }
    const compressMs: number[] = [];
    for (const file of image.files.filter((f) => f.size >= 4 << 20)) {
      const args = ["-c", `exec zstd -1 -T0 -q -c "$1" >/dev/null`, "sh", file.path];
      compressMs.push(await timedCommand(`zstd ${file.name}`, ["sh", ...args]));
    }
    started = performance.now();
    const verify = await ssh.exec(
      `cd "$HOME/.cache/fabricd/${image.hash}" && sha256sum -c --quiet manifest`,
    );
    const verifyMs = performance.now() - started;
    if (verify.code !== 0) throw new BenchStepError(`remote sha256sum failed: ${verify.stderr}`);
    started = performance.now();
    await ssh.exec("true");
    const execMs = performance.now() - started;
    return {
      kind: image.kind,
      hash: image.hash,
      files: image.files.map((f) => ({ name: f.name, size: f.size })),
      imageMs,
      openMs,
      runs: out,
      parts: { compressMs, verifyMs, execMs },
    };
  } finally {
    await ssh.close();
  }
}

/**
 * A pause after removing a copy, before the next timed command: the kernel
 * frees the removed files' pages (about 130 MB) after `rm` returns, and a copy
 * started at once paid for it (a cold copy right after emptying the cache took
 * 1.0-1.1 s; with this pause 0.6 s), whichever side came first.
 */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
}

const SETTLE_MS = 1000;
