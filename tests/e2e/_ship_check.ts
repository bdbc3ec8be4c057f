/**
 * Run inside the testnet's desktop namespace by ssh_fabric_test.ts: ships the
 * image in IMAGE_DIR to HOST while claiming a wrong SHA-256, and prints what
 * happened as JSON. The image must be refused and leave nothing in the cache.
 */
import { readImageDir } from "../../src/image/image_dir.ts";
import { shipImage } from "../../src/image/ship.ts";
import { SshConnection } from "../../src/launchers/ssh_connection.ts";

const [host, dir, imageDir] = Deno.args;
const ssh = new SshConnection({ host: host! }, { controlDir: `${dir}/ssh-check` });
try {
  const image = await readImageDir(imageDir!);
  const forged = { ...image, hash: "f".repeat(64) };
  let error = "";
  try {
    await shipImage(forged, ssh, { expectHash: "0".repeat(64) });
  } catch (caught) {
    error = (caught as Error).message;
  }
  const listing = await ssh.exec(`ls -a "$HOME/.cache/fabricd"`);
  console.log(JSON.stringify({ error, cache: listing.stdout.split("\n").filter(Boolean) }));
} finally {
  await ssh.close();
}
