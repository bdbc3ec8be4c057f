/**
 * `fabricd image build|show`: writes this fabricd's image as a directory to
 * carry (and, with `--file`, as one self-extracting executable), or says which
 * image this fabricd is and where its files are.
 * @module
 */
import { resolve } from "../base/paths.ts";
import { exportImage, ImageUnavailableError } from "../image/build_image.ts";
import { selfImage } from "../image/self_image.ts";
import { writeSelfExtracting } from "../image/self_extracting.ts";
import { EXIT } from "../types/mod.ts";
import { parseFlags, stringFlag } from "./args.ts";
import { CliError, usage } from "./cli_error.ts";

/** Help text of `fabricd image`. */
export const IMAGE_HELP = `fabricd image build [--out DIR] [--file FILE]
fabricd image show

build  writes this fabricd's image into DIR (default ./fabricd-image): deno, the
       bundle (js/), the "fabricd" launcher and a SHA-256 manifest. The same
       source gives the same image hash. From a checkout the bundle is made
       once per source hash ("deno bundle" needs network access the first
       time, for esbuild); from an image the image itself is copied. With
       --file FILE it also writes the image as one self-extracting executable.
       Carry DIR (or FILE) to a host without network and run DIR/fabricd
       there: nothing is fetched (docs/ssh.md, "Air-gapped sites").
show   prints the image hash, its kind and its files.

Exit codes: 0 done; 64 usage; 69 the image cannot be built here (no network
for esbuild); 1 DIR or FILE cannot be written.
`;

/** Runs `fabricd image`. */
export async function imageCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("image", args, {
    out: { type: "string" },
    file: { type: "string" },
  });
  const [sub, ...extra] = parsed.positionals;
  if (parsed.flags.help || sub === undefined) {
    console.log(IMAGE_HELP);
    return parsed.flags.help ? EXIT.OK : EXIT.USAGE;
  }
  if (extra.length > 0) throw usage(`Unexpected "${extra[0]}": see "fabricd image --help"`);
  if (sub !== "build" && sub !== "show") {
    throw usage(`Unknown image command "${sub}": use build or show`);
  }
  let image;
  try {
    image = await selfImage();
  } catch (error) {
    if (error instanceof ImageUnavailableError) {
      throw new CliError(error.message, EXIT.UNREACHABLE, { cause: error });
    }
    throw error;
  }
  if (sub === "show") {
    console.log(`image ${image.hash} (${image.kind})`);
    for (const file of image.files) console.log(`  ${file.name}  ${file.size} B  ${file.path}`);
    return EXIT.OK;
  }
  const out = resolve(stringFlag(parsed, "out") ?? "fabricd-image");
  const file = stringFlag(parsed, "file");
  try {
    const written = await exportImage(image, out);
    console.log(`Image ${written.hash} written to ${out} (run ${out}/fabricd)`);
    if (file) {
      await writeSelfExtracting(written, out, resolve(file));
      console.log(`Self-extracting image written to ${resolve(file)}`);
    }
  } catch (error) {
    throw new CliError(
      `Cannot write the image: ${error instanceof Error ? error.message : String(error)}`,
      EXIT.FAILURE,
      { cause: error },
    );
  }
  return EXIT.OK;
}
