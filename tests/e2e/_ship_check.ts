/**
 * Run inside the testnet's desktop namespace by ssh_fabric_test.ts with
 * `HOST DIR IMAGE_DIR MODE`, printing what happened as JSON:
 *
 * - `forged`: ships the image while claiming a wrong SHA-256; it must be
 *   refused and leave nothing in the cache;
 * - `upgrade`: ships the image, then a next version of it whose bundle
 *   changed (made in DIR from the first); the second copy must send only
 *   the changed files and run; a throwaway warm process of it (`warmImage`)
 *   must have left Deno's parse of its role chunk in the host's cache.
 */
import { join } from "node:path";
import { exportImage } from "../../src/image/build_image.ts";
import { imageOf, readImageDir } from "../../src/image/image_dir.ts";
import { shipImage, warmImage } from "../../src/launchers/ship_image.ts";
import { SshConnection } from "../../src/launchers/ssh_connection.ts";

const [host, dir, imageDir, mode] = Deno.args;
const ssh = new SshConnection({ host: host! }, { controlDir: `${dir}/ssh-check` });
try {
  const image = await readImageDir(imageDir!);
  if (mode === "upgrade") {
    // The next version: the same deno, one chunk of the bundle changed.
    const next = join(dir!, "next-image");
    await exportImage(image, next);
    const main = join(next, "js", "main.js");
    const text = await Deno.readTextFile(main);
    await Deno.remove(main);
    await Deno.writeTextFile(main, `${text}\n// next version\n`);
    const files = image.files.map((f) => ({ name: f.name, path: join(next, f.name) }));
    const upgraded = { ...(await imageOf("bundle", files)) };
    const first = await shipImage(image, ssh);
    const second = await shipImage(upgraded, ssh);
    // Only a process that loaded this version's role chunk puts its path in
    // Deno's dependency cache; nothing but the warm-up has run it.
    const warmed = await warmImage(ssh, upgraded.hash);
    const parsed = await ssh.exec(
      `grep -l "${upgraded.hash}/js/role-" "$HOME"/.cache/deno/dep_analysis_cache_v2*`,
    );
    const runs = await ssh.exec(`"$HOME/.cache/fabricd/${upgraded.hash}/fabricd" --version`);
    console.log(JSON.stringify({
      first,
      second,
      version: runs.stdout.trim(),
      warmed,
      parsed: parsed.code === 0,
    }));
  } else {
    const forged = { ...image, hash: "f".repeat(64) };
    let error = "";
    try {
      await shipImage(forged, ssh, { expectHash: "0".repeat(64) });
    } catch (caught) {
      error = (caught as Error).message;
    }
    const listing = await ssh.exec(`ls -a "$HOME/.cache/fabricd"`);
    console.log(JSON.stringify({ error, cache: listing.stdout.split("\n").filter(Boolean) }));
  }
} finally {
  await ssh.close();
}
