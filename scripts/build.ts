/**
 * `deno task build`: compiles fabricd into one binary, `dist/fabricd`, with the
 * same explicit permission flags that fabricd uses when it runs from source.
 *
 * `deno compile` needs Deno's `denort` runtime: downloaded on first use, or
 * given with `DENORT_BIN`. Where the download is impossible (air-gapped build
 * hosts), this says so and how to proceed, and exits 69.
 * @module
 */
import { PERMISSION_FLAGS } from "../src/image/self_command.ts";

const output = "dist/fabricd";
const args = ["compile", ...PERMISSION_FLAGS, "--output", output, "main.ts"];
console.log(`deno ${args.join(" ")}`);
const result = await new Deno.Command(Deno.execPath(), {
  args,
  stdout: "inherit",
  stderr: "piped",
}).output();
const stderr = new TextDecoder().decode(result.stderr);
if (result.success) {
  console.log(`Built ${output}`);
  Deno.exit(0);
}
if (/denort|base binary|dl\.deno\.land/i.test(stderr)) {
  const given = Deno.env.get("DENORT_BIN");
  console.error(
    given
      ? `fabricd build: deno compile could not use DENORT_BIN="${given}": point it at the denort executable of Deno ${Deno.version.deno}`
      : `fabricd build: deno compile could not download Deno's runtime (denort) from this machine.
  Set DENORT_BIN to a denort ${Deno.version.deno} executable for this platform (unzip
  denort-<target>.zip from a machine that can download it) and run "deno task build" again.
  Without it, fabricd still runs from source ("deno task up") and ships itself as
  deno + bundle (see docs/architecture.md).`,
  );
  Deno.exit(69);
}
console.error(stderr.trim());
console.error("fabricd build: deno compile failed (output above)");
Deno.exit(1);
