/**
 * What the multi-host and real-component tests need from the machine, checked
 * the same way for each: Linux, root, and Debian programs on the PATH.
 */

/** The outcome of a prerequisite check. */
export type Prereq = { ok: true } | { ok: false; reason: string };

/** True when `FABRIC_E2E=require` (CI): a missing prerequisite is then a failure, not a skip. */
export function prereqRequired(): boolean {
  return Deno.env.get("FABRIC_E2E") === "require";
}

/** Whether `name` (a path, or a program looked up on PATH) is an existing file. */
export async function onPath(name: string): Promise<boolean> {
  const candidates = name.startsWith("/")
    ? [name]
    : (Deno.env.get("PATH") ?? "").split(":").filter((d) => d !== "").map((d) => `${d}/${name}`);
  for (const path of candidates) {
    try {
      if ((await Deno.stat(path)).isFile) return true;
    } catch {
      // not there
    }
  }
  return false;
}

/**
 * Linux, root and every `[program, Debian package]` of `tools`; `what` names
 * the thing that needs them in the reason.
 */
export async function checkTools(
  what: string,
  tools: ReadonlyArray<readonly [string, string]>,
): Promise<Prereq> {
  if (Deno.build.os !== "linux") {
    return { ok: false, reason: `${what} needs Linux, this is ${Deno.build.os}` };
  }
  if (Deno.uid() !== 0) {
    return { ok: false, reason: `${what} needs root (run the tests with sudo)` };
  }
  const missing: string[] = [];
  const packages = new Set<string>();
  for (const [tool, pkg] of tools) {
    if (!(await onPath(tool))) {
      missing.push(tool);
      packages.add(pkg);
    }
  }
  if (missing.length === 0) return { ok: true };
  return {
    ok: false,
    reason: `missing ${missing.join(", ")}; install with: apt-get install -y ${
      [...packages].join(" ")
    }`,
  };
}

/** What a test file does with its prerequisites. */
export interface SkipPolicy {
  /** Give to `Deno.test({ ignore })`: true when the tests must be skipped. */
  skip: boolean;
  /** Call first in each test: throws (naming the reason) when the prerequisite is missing. */
  assertReady(): void;
}

/**
 * The one policy for tests of real components: without the prerequisite, skip
 * with a printed reason, unless `FABRIC_E2E=require` makes it a failure.
 */
export function skipPolicy(prereq: Prereq, what: string): SkipPolicy {
  const skip = !prereq.ok && !prereqRequired();
  if (!prereq.ok && skip) {
    console.log(`${what} skipped: ${prereq.reason} (FABRIC_E2E=require makes this a failure)`);
  }
  return {
    skip,
    assertReady() {
      if (!prereq.ok) {
        throw new Error(`FABRIC_E2E=require, but ${what} cannot run: ${prereq.reason}`);
      }
    },
  };
}
