/**
 * `deno task install [--prefix DIR]`: installs the `fabricd` command.
 *
 * The image of this checkout (built once per source hash) is copied to
 * `PREFIX/lib/fabricd/<hash>/`, and `PREFIX/bin/fabricd` becomes that image's
 * launcher with the image directory written in (one `sh` start, then the
 * image's deno): no npx, no checkout, no network in the loop. PREFIX defaults
 * to `~/.local`. Images installed before stay, so services started from them
 * keep working; remove old ones by hand.
 *
 * Exit codes: 0 installed; 64 usage; 69 the image cannot be built here; 1 the
 * prefix cannot be written.
 * @module
 */
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { homeDir } from "../src/config/home.ts";
import { exportImage, ImageUnavailableError } from "../src/image/build_image.ts";
import { shellQuote } from "../src/launchers/ssh_connection.ts";
import { launcherScript } from "../src/image/self_command.ts";
import { selfImage } from "../src/image/self_image.ts";

let prefix: string;
try {
  const { values } = parseArgs({
    args: Deno.args,
    options: { prefix: { type: "string" }, help: { type: "boolean", short: "h" } },
    strict: true,
  });
  if (values.help) {
    console.log("deno task install [--prefix DIR]: puts fabricd into DIR/bin (default ~/.local)");
    Deno.exit(0);
  }
  prefix = resolve(values.prefix ?? join(homeDir(), ".local"));
} catch (error) {
  console.error(`install: ${(error as Error).message.split("\n")[0]}: use [--prefix DIR]`);
  Deno.exit(64);
}

try {
  const image = await selfImage();
  const dir = join(prefix, "lib", "fabricd", image.hash);
  await exportImage(image, dir);
  const bin = join(prefix, "bin");
  await Deno.mkdir(bin, { recursive: true });
  const command = join(bin, "fabricd");
  const tmp = `${command}.tmp-${Deno.pid}`;
  const script = launcherScript(shellQuote(dir)).replace(
    "\n",
    `\n# fabricd ${image.hash}, installed by "deno task install".\n`,
  );
  await Deno.writeTextFile(tmp, script, { mode: 0o755 });
  await Deno.chmod(tmp, 0o755);
  await Deno.rename(tmp, command);
  console.log(`Installed ${command} (image ${image.hash.slice(0, 12)} in ${dir})`);
  const path = (Deno.env.get("PATH") ?? "").split(":");
  if (!path.includes(bin)) {
    console.log(`${bin} is not on your PATH: add it, e.g. export PATH="${bin}:$PATH"`);
  }
} catch (error) {
  console.error(`install: ${error instanceof Error ? error.message : String(error)}`);
  Deno.exit(error instanceof ImageUnavailableError ? 69 : 1);
}
