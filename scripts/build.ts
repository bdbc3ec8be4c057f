/**
 * `deno task build`: one file to copy, `dist/fabricd`.
 *
 * - Where `deno compile` can get Deno's `denort` runtime (downloaded, or given
 *   with `DENORT_BIN`), it is a compiled binary with fabricd's permission flags.
 * - Otherwise it is the self-extracting image (`src/image/self_extracting.ts`):
 *   a `sh` stub and the image directory, unpacked into `~/.cache/fabricd/<hash>/`
 *   on first run. The image directory itself is written to `dist/image/`.
 *
 * It says which one it made. Exit codes: 0 built; 69 the image cannot be built
 * here (no network for esbuild); 1 anything else.
 * @module
 */
import { join } from "node:path";
import { exportImage, ImageUnavailableError } from "../src/image/build_image.ts";
import { PERMISSION_FLAGS } from "../src/image/self_command.ts";
import { selfImage } from "../src/image/self_image.ts";
import { writeSelfExtracting } from "../src/image/self_extracting.ts";

const dist = new URL("../dist/", import.meta.url).pathname;
const output = join(dist, "fabricd");
await Deno.mkdir(dist, { recursive: true });
// deno compile will not overwrite the self-extracting file of an earlier build.
await Deno.remove(output).catch(() => {});

const compile = await new Deno.Command(Deno.execPath(), {
  args: ["compile", "--quiet", ...PERMISSION_FLAGS, "--output", output, "main.ts"],
  cwd: join(dist, ".."),
  stdout: "inherit",
  stderr: "piped",
  env: { NO_COLOR: "1" },
  // Without network the download of denort fails fast, or hangs on DNS.
  signal: AbortSignal.timeout(120_000),
}).output().catch((error: Error) => ({
  success: false,
  stderr: new TextEncoder().encode(error.message),
}));
if (compile.success) {
  console.log(`Built ${output}: a compiled binary (deno compile)`);
  Deno.exit(0);
}
const said = new TextDecoder().decode(compile.stderr).split("\n").map((l) => l.trim());
const backtrace = said.findIndex((l) => l.startsWith("Stack backtrace"));
const why = said.slice(0, backtrace < 0 ? undefined : backtrace).filter(Boolean).join(" ")
  .slice(0, 300);
console.log(
  `deno compile is not possible here (${why || "no denort"}); building the image instead`,
);
try {
  const image = await exportImage(await selfImage(), join(dist, "image"));
  await writeSelfExtracting(image, join(dist, "image"), output);
  const size = (await Deno.stat(output)).size;
  console.log(
    `Built ${output}: a self-extracting image (${(size / 1e6).toFixed(1)} MB, image ${
      image.hash.slice(0, 12)
    }); the image directory is ${join(dist, "image")}`,
  );
} catch (error) {
  console.error(`fabricd build: ${error instanceof Error ? error.message : String(error)}`);
  Deno.exit(error instanceof ImageUnavailableError ? 69 : 1);
}
