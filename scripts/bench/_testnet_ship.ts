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
import { selfImage } from "../../src/image/self_image.ts";
import { shipImage, type ShipResult } from "../../src/image/ship.ts";
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
  /** Scratch directory: the image's build cache and the ssh control socket go here. */
  dir: string;
  /** How many cold copies to time. */
  runs: number;
}

/**
 * `ship DIR HOST N`: N cold copies of this fabricd's image to `host`, each
 * against plain `ssh cat` of the same files.
 * @throws {BenchStepError} when a copy, a baseline or emptying the cache fails.
 */
export async function shipCommand(host: string, options: ShipCommandOptions): Promise<ShipOutput> {
  const { dir, runs } = options;
  let started = performance.now();
  const image = await selfImage({ cacheDir: join(dir, "cache") });
  const imageMs = performance.now() - started;
  const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;
  progress(
    `image ${image.kind} ${image.hash.slice(0, 12)}: ${
      image.files.map((f) => `${f.name} ${mb(f.size)}`).join(", ")
    } (made in ${round(imageMs, 0)} ms, not counted)`,
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
    // Plain ssh riding on the very same master connection.
    const plainSsh = (remote: string, file: string, what: string): Promise<number> =>
      timedCommand(what, [
        "sh",
        "-c",
        'exec ssh -S "$1" -o ControlMaster=no -o BatchMode=yes "$2" "$3" <"$4"',
        "sh",
        socket,
        host,
        remote,
        file,
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
      const doShip = async (): Promise<[number, ShipResult]> => {
        const t = performance.now();
        const result = await shipImage(image, ssh, { progress: false });
        const ms = performance.now() - t;
        if (!result.copied) throw new BenchStepError(`the image was already on ${host}`);
        return [ms, result];
      };
      const doCat = async (): Promise<[number[], number[]]> => {
        const toNull: number[] = [];
        const toDisk: number[] = [];
        for (const file of image.files) {
          toNull.push(await plainSsh("cat >/dev/null", file.path, `ssh cat ${file.name}`));
        }
        for (const file of image.files) {
          const blob = `"$HOME/.cache/fabricd-bench-${file.name}"`;
          toDisk.push(await plainSsh(`cat >${blob}`, file.path, `ssh cat >file ${file.name}`));
          await ssh.exec(`rm -f ${blob}`);
        }
        return [toNull, toDisk];
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
    const compression = out[0]?.result.compression ?? "gzip";
    const compressMs: number[] = [];
    for (const file of image.files) {
      const args = compression === "zstd"
        ? ["-c", `exec zstd -1 -T0 -q -c "$1" >/dev/null`, "sh", file.path]
        : ["-c", `exec gzip -1 -c "$1" >/dev/null`, "sh", file.path];
      compressMs.push(await timedCommand(`${compression} ${file.name}`, ["sh", ...args]));
    }
    started = performance.now();
    const verify = await ssh.exec(
      `cd "$HOME/.cache/fabricd/${image.hash}" && sha256sum ${
        image.files.map((f) => f.name).join(" ")
      } >/dev/null`,
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
