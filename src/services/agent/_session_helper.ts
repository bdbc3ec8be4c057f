/**
 * A session helper: a static Linux executable of about a dozen instructions
 * that calls `setsid()` and execs its first argument with the rest as the
 * new program's `argv`, keeping its environment:
 * `HELPER PATH ARGV0 ARGS...`.
 *
 * It does what `setsid(1)` does for a task, without loading a C library:
 * `setsid(1)` is a dynamically linked program, and the dynamic loader's work
 * made every task start cost as much again as the task's own `/bin/true`
 * (docs/services.md, agent, "Throughput"). The agent writes it once into its
 * task directory root and checks that it runs there (a `noexec` mount, an
 * unknown CPU or another kernel fall back to `setsid(1)`).
 *
 * The image is an ELF64 header, one loadable segment and the code below,
 * for x86-64 and AArch64. At entry the stack holds `argc`, then `argv[0..]`,
 * a null, then the environment: `argv[1]` is the path, `&argv[2]` the new
 * `argv`, `&argv[argc + 1]` the environment. When `execve` fails it exits
 * 127, as a shell does for a command it cannot run; the agent checks the
 * path first (`_session_command.ts`), so that is left for a file removed in
 * between.
 * @module
 */
import { join } from "../../base/paths.ts";

/** The helper's code and ELF machine number for one CPU. */
interface HelperCode {
  machine: number;
  code: number[];
}

/** x86-64 (ELF machine 62); syscalls: setsid 112, execve 59, exit 60. */
const X86_64: HelperCode = {
  machine: 62,
  code: [
    [0xb8, 0x70, 0x00, 0x00, 0x00], // mov eax, 112
    [0x0f, 0x05], // syscall: setsid()
    [0x48, 0x8b, 0x7c, 0x24, 0x10], // mov rdi, [rsp+16]: argv[1]
    [0x48, 0x8d, 0x74, 0x24, 0x18], // lea rsi, [rsp+24]: &argv[2]
    [0x48, 0x8b, 0x04, 0x24], // mov rax, [rsp]: argc
    [0x48, 0x8d, 0x54, 0xc4, 0x10], // lea rdx, [rsp+rax*8+16]: envp
    [0xb8, 0x3b, 0x00, 0x00, 0x00], // mov eax, 59
    [0x0f, 0x05], // syscall: execve(rdi, rsi, rdx)
    [0xbf, 0x7f, 0x00, 0x00, 0x00], // mov edi, 127
    [0xb8, 0x3c, 0x00, 0x00, 0x00], // mov eax, 60
    [0x0f, 0x05], // syscall: exit(127)
  ].flat(),
};

/** AArch64 (ELF machine 183), little-endian words; syscalls: setsid 157, execve 221, exit 93. */
const AARCH64: HelperCode = {
  machine: 183,
  code: words([
    0xd28013a8, // mov x8, #157
    0xd4000001, // svc #0: setsid()
    0xf94003e1, // ldr x1, [sp]: argc
    0xf9400be0, // ldr x0, [sp, #16]: argv[1]
    0x8b216fe2, // add x2, sp, x1, lsl #3: sp + argc*8
    0x91004042, // add x2, x2, #16: envp
    0x910063e1, // add x1, sp, #24: &argv[2]
    0xd2801ba8, // mov x8, #221
    0xd4000001, // svc #0: execve(x0, x1, x2)
    0xd2800fe0, // mov x0, #127
    0xd2800ba8, // mov x8, #93
    0xd4000001, // svc #0: exit(127)
  ]),
};

/** The helper's code for Deno's name of a CPU, if there is one. */
const CODE = new Map<string, HelperCode>([["x86_64", X86_64], ["aarch64", AARCH64]]);

/** Where the image is loaded; the usual base of a static executable. */
const LOAD_ADDRESS = 0x400000;
const ELF_HEADER_BYTES = 64;
const PROGRAM_HEADER_BYTES = 56;

/**
 * The helper's executable image for `arch` (`Deno.build.arch`'s names), or
 * null for a CPU it has no code for.
 */
export function sessionHelperImage(arch: string): Uint8Array | null {
  const helper = CODE.get(arch);
  if (!helper) return null;
  const codeAt = ELF_HEADER_BYTES + PROGRAM_HEADER_BYTES;
  const size = codeAt + helper.code.length;
  const image = new Uint8Array(size);
  const view = new DataView(image.buffer);
  // ELF header: magic, 64-bit, little-endian, version 1, System V ABI.
  image.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);
  view.setUint16(16, 2, true); // ET_EXEC
  view.setUint16(18, helper.machine, true);
  view.setUint32(20, 1, true); // version
  view.setBigUint64(24, BigInt(LOAD_ADDRESS + codeAt), true); // entry point
  view.setBigUint64(32, BigInt(ELF_HEADER_BYTES), true); // program headers' offset
  view.setBigUint64(40, 0n, true); // no section headers
  view.setUint32(48, 0, true); // flags
  view.setUint16(52, ELF_HEADER_BYTES, true);
  view.setUint16(54, PROGRAM_HEADER_BYTES, true);
  view.setUint16(56, 1, true); // one program header
  view.setUint16(58, 64, true); // section header size (none follow)
  // The one program header: the whole file, loaded read + execute.
  const ph = ELF_HEADER_BYTES;
  view.setUint32(ph, 1, true); // PT_LOAD
  view.setUint32(ph + 4, 5, true); // PF_R | PF_X
  view.setBigUint64(ph + 8, 0n, true); // from file offset 0
  view.setBigUint64(ph + 16, BigInt(LOAD_ADDRESS), true); // virtual address
  view.setBigUint64(ph + 24, BigInt(LOAD_ADDRESS), true); // physical address
  view.setBigUint64(ph + 32, BigInt(size), true); // bytes in the file
  view.setBigUint64(ph + 40, BigInt(size), true); // bytes in memory
  view.setBigUint64(ph + 48, 0x10000n, true); // alignment (64 KiB pages are the largest)
  image.set(helper.code, codeAt);
  return image;
}

/** The helper's file name: with a '.', so it is never a task's directory. */
export const SESSION_HELPER_NAME = "setsid.elf";

/**
 * Writes the helper for this CPU into `dir` (made when missing, mode 0700)
 * and checks that it starts a program there, in a session of its own.
 * Resolves to its path, or null when this host cannot use it (not Linux, a
 * CPU without code, a `noexec` directory, a failed check); never rejects.
 */
export async function installSessionHelper(dir: string): Promise<string | null> {
  const image = Deno.build.os === "linux" ? sessionHelperImage(Deno.build.arch) : null;
  if (image === null) return null;
  const path = join(dir, SESSION_HELPER_NAME);
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    // Written under another name and renamed: a helper is never seen half written.
    const partial = `${path}.${crypto.randomUUID()}`;
    await Deno.writeFile(partial, image, { mode: 0o700, createNew: true });
    await Deno.rename(partial, path);
    return await startsSession(path) ? path : null;
  } catch {
    return null;
  }
}

/**
 * Whether `helper` runs `/bin/sh` as the leader of a new session: the shell
 * prints its PID and its session ID (field 6 of `/proc/self/stat`, read by
 * the shell's own `read`).
 */
async function startsSession(helper: string): Promise<boolean> {
  const script = 'read -r pid _ _ _ _ sid _ < /proc/self/stat; echo "$$ $sid $0"';
  const output = await new Deno.Command(helper, {
    args: ["/bin/sh", "fabric-check", "-c", script],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  const [pid, sid, argv0] = new TextDecoder().decode(output.stdout).trim().split(" ");
  return output.code === 0 && pid !== undefined && pid === sid && argv0 === "fabric-check";
}

function words(list: number[]): number[] {
  return list.flatMap((
    word,
  ) => [word & 0xff, (word >>> 8) & 0xff, (word >>> 16) & 0xff, word >>> 24]);
}
