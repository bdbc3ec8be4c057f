/**
 * `fabricd rotate`: replaces the operator's root key (docs/security.md "Key
 * rotation"). The old and the new key sign a statement naming both and the
 * end of a grace period; every registry takes it, every service learns it
 * from its heartbeat answers, trusts both roots until the grace ends and is
 * re-certified from the top down; then the old root is refused.
 * `fabricd rotate --status` shows how far re-certification has come.
 * @module
 */
import { eachAtMost } from "../base/at_most.ts";
import { saveFabricFile } from "../config/fabric_file.ts";
import { keyPathOf } from "../config/fabric_file.ts";
import { FabricRequestError, type Target } from "../client/fabric_client.ts";
import { generateFabricKeys, readKeyFile, rotationPathOf, writeKeyFile } from "../crypto/keys.ts";
import {
  GRACE_SECONDS,
  issueRotation,
  MAX_GRACE_SECONDS,
  MIN_GRACE_SECONDS,
  verifyRotation,
} from "../crypto/rotation.ts";
import { chainRootOf, type TrustRoot } from "../crypto/certificate.ts";
import { signRequest } from "../crypto/signing.ts";
import { targetFor } from "../client/route.ts";
import type { ServiceState } from "../types/mod.ts";
import { EXIT } from "../types/mod.ts";
import { parseFlags, stringFlag } from "./args.ts";
import { CliError, usage } from "./cli_error.ts";
import { type FabricContext, loadContext } from "./context.ts";

/** Help text of `fabricd rotate`. */
export const ROTATE_HELP = `fabricd rotate [--grace SECONDS] [--json] [--fabric FILE]
fabricd rotate --status [--json] [--fabric FILE]

Replaces the fabric's root key (the key file of the fabric file) with a new
one. The old and the new key sign a rotation statement; every registry takes
it, and every service learns it at its next heartbeat, trusts both keys until
the grace period ends, and is re-certified by its parent from the top down
within a few heartbeats per level. After the grace, anything signed with the
old key, or with a chain from it, is refused (401). The key file is replaced
atomically, the old private key is not kept, and the statement stays beside
it as KEYFILE.rotation (commands and applications that read the key file
trust the old key during the grace through it).

  --grace SECONDS  how long the old key stays trusted: ${MIN_GRACE_SECONDS} to ${MAX_GRACE_SECONDS} (default ${GRACE_SECONDS})
  --status         show the current root, the grace, and which live services
                   answer with a chain from the current root ("behind": from
                   the previous root; "unknown": no answer, or neither root)
  --json           print JSON

A second rotation is refused while the grace of the last one runs. A service
that was offline through the whole grace is refused when it comes back and
stops; its parent's replacement policy applies, or restart it with
"fabricd restart ID". Exit codes: 0 done, 1 refused (a rotation in its grace,
or the registry holds another root), 64 usage, 69 the fabric is not running,
77 the registry refuses this key, 78 no fabric file or key file.
`;

/** What `GET /v1/registry/rotation` answers. */
export interface RotationStatus {
  statement: string | null;
  root: string;
  previous: string | null;
  until: number | null;
}

/** Which live services answer with a chain from the current root. */
export interface RotationProgress {
  live: number;
  current: number;
  /** Answering with a chain from the previous root. */
  behind: string[];
  /** Not answering, or answering with a chain from neither root. */
  unknown: string[];
}

/** States whose services are not expected to answer. */
const ENDED: readonly ServiceState[] = ["STOPPED", "FAILED", "LOST", "DEAD"];
/** Services asked at once by {@linkcode progressOf}. */
const PROBES = 8;

/** Runs `fabricd rotate`. */
export async function rotateCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("rotate", args, {
    grace: { type: "string" },
    status: { type: "boolean" },
    json: { type: "boolean" },
    fabric: { type: "string" },
  });
  if (parsed.flags.help) {
    console.log(ROTATE_HELP);
    return EXIT.OK;
  }
  if (parsed.positionals.length > 0) {
    throw usage('fabricd rotate takes no arguments: see "fabricd rotate --help"');
  }
  const graceText = stringFlag(parsed, "grace");
  if (parsed.flags.status && graceText !== undefined) {
    throw usage('Give --grace or --status, not both: see "fabricd rotate --help"');
  }
  const grace = graceText === undefined ? GRACE_SECONDS : parseGrace(graceText);
  const context = await loadContext(stringFlag(parsed, "fabric"));
  const json = parsed.flags.json === true;
  if (parsed.flags.status) {
    const status = await statusOf(context);
    printStatus(status, await progressOf(context, status), json);
    return EXIT.OK;
  }
  const done = await rotate(context, grace);
  if (json) console.log(JSON.stringify(done));
  else {
    console.log(
      `Rotated the fabric root: ${done.previous} -> ${done.root}\n` +
        `The old root is trusted until ${new Date(done.until).toISOString()} (${grace} s); ` +
        `services re-certify within a few heartbeats: see "fabricd rotate --status"`,
    );
  }
  return EXIT.OK;
}

/**
 * A `--grace` value in seconds.
 * @throws {CliError} (64) when it is not a whole number within the bounds.
 */
export function parseGrace(text: string): number {
  const value = Number(text);
  if (!/^\d{1,7}$/.test(text) || value < MIN_GRACE_SECONDS || value > MAX_GRACE_SECONDS) {
    throw usage(
      `Invalid --grace "${text}": give ${MIN_GRACE_SECONDS} to ${MAX_GRACE_SECONDS} seconds`,
    );
  }
  return value;
}

/**
 * Rotates the root of the fabric of `context`: checks that it may, writes
 * the new key beside the old one, has every registry take the statement,
 * then replaces the key file and the fabric file's fingerprint. Nothing is
 * changed when a check fails or the first registry refuses.
 * @throws {CliError} 1 when a rotation is in its grace or the registry holds another root.
 */
export async function rotate(
  context: FabricContext,
  grace: number,
): Promise<{ previous: string; root: string; until: number }> {
  const held = await statusOf(context);
  const old = context.keys;
  const keyPath = keyPathOf(context.fabricPath, context.fabric);
  const pending = `${keyPath}.new`;
  if (held.root !== old.fingerprint && held.statement) {
    const interrupted = await readKeyFile(pending).catch(() => null);
    if (interrupted?.fingerprint === held.root) {
      // The registry took the statement, then the command stopped: finish it.
      await replaceFiles(context, held.statement, pending, interrupted.fingerprint);
      return { previous: old.fingerprint, root: held.root, until: held.until ?? 0 };
    }
  }
  if (held.root !== old.fingerprint) {
    throw new CliError(
      `The registry's root is ${held.root}, this key file's is ${old.fingerprint}: ` +
        "restore the fabric's key file, or see whether a rotation is under way",
      EXIT.FAILURE,
    );
  }
  if (held.until !== null && Date.now() <= held.until) {
    throw new CliError(
      `A rotation is in its grace until ${
        new Date(held.until).toISOString()
      }: rotate again after it ends (see "fabricd rotate --status")`,
      EXIT.FAILURE,
    );
  }
  const fresh = await generateFabricKeys();
  // The grace the statement states is the one printed: both from this one clock reading.
  const issuedAt = Date.now();
  const statement = await issueRotation(old, fresh, { graceSeconds: grace, now: issuedAt });
  await writeKeyFile(pending, fresh, { force: true });
  const registries = context.registry.endpoints;
  try {
    await post(context, registries[0]!, statement);
  } catch (error) {
    await Deno.remove(pending).catch(() => {});
    throw error;
  }
  await replaceFiles(context, statement, pending, fresh.fingerprint);
  for (const registry of registries.slice(1)) {
    // A replica that is down takes the statement from the key file when it starts.
    await post(context, registry, statement).catch((error) =>
      console.error(`fabricd: registry "${registry.id}" did not take the statement: ${error}`)
    );
  }
  return {
    previous: old.fingerprint,
    root: fresh.fingerprint,
    until: (Math.floor(issuedAt / 1000) + grace) * 1000,
  };
}

/**
 * Puts the rotation on disk: the statement beside the key file first (it is
 * ignored until the key file holds its new key), then the new key over the
 * old one, then the fabric file's fingerprint.
 */
async function replaceFiles(
  context: FabricContext,
  statement: string,
  pending: string,
  fingerprint: string,
): Promise<void> {
  const keyPath = keyPathOf(context.fabricPath, context.fabric);
  await writeText(rotationPathOf(keyPath), `${statement}\n`);
  await Deno.rename(pending, keyPath);
  await saveFabricFile(context.fabricPath, { ...context.fabric, fingerprint });
}

/** The registry's view of the fabric's root and of a rotation's progress. */
export async function statusOf(context: FabricContext): Promise<RotationStatus> {
  const registry = context.registry.endpoints[0]!;
  try {
    return await context.client.call<RotationStatus>(registry, {
      method: "GET",
      path: "/v1/registry/rotation",
    });
  } catch (error) {
    throw refusal(error);
  }
}

async function post(context: FabricContext, registry: Target, statement: string): Promise<void> {
  try {
    await context.client.call(registry, {
      method: "POST",
      path: "/v1/registry/rotation",
      body: { statement },
    });
  } catch (error) {
    throw refusal(error);
  }
}

/** A registry's refusal as the command's error: 77 for this key, 1 for a conflict. */
function refusal(error: unknown): unknown {
  if (!(error instanceof FabricRequestError)) return error;
  if (error.status === 401 || error.status === 403) {
    return new CliError(
      `The registry refuses this key (${error.message}): only the fabric's operator key rotates it`,
      EXIT.REFUSED,
      { cause: error },
    );
  }
  if (error.status === 409) return new CliError(error.message, EXIT.FAILURE, { cause: error });
  return error;
}

/**
 * Asks every live service for its status and looks at the chain its answer
 * is signed with (the key alone for a root service): the root it starts from
 * says whether the service is re-certified. Answers are not otherwise used.
 */
export async function progressOf(
  context: FabricContext,
  status: RotationStatus,
): Promise<RotationProgress> {
  const records = await context.registry.list();
  const live = records.filter((r) => !ENDED.includes(r.state));
  const roots = [await rootOf(status.root, status.statement, "new")];
  if (status.previous) roots.push(await rootOf(status.previous, status.statement, "old"));
  const out: RotationProgress = { live: live.length, current: 0, behind: [], unknown: [] };
  await eachAtMost(live, PROBES, async (record) => {
    const root = await answerRoot(context, targetFor(record, records), roots).catch(() => null);
    if (root === status.root) out.current++;
    else if (root) out.behind.push(record.id);
    else out.unknown.push(record.id);
  });
  return out;
}

/** The root named `fingerprint`: one of the keys of `statement`, or the current key. */
async function rootOf(
  fingerprint: string,
  statement: string | null,
  side: "old" | "new",
): Promise<{ fingerprint: string; publicKey: CryptoKey | null }> {
  const rotation = statement ? await verifyRotation(statement) : null;
  if (rotation && typeof rotation !== "string" && rotation[side].fingerprint === fingerprint) {
    return rotation[side];
  }
  return { fingerprint, publicKey: null };
}

/** The fingerprint of the root that the answer of `target` to `GET /v1/status` chains to. */
async function answerRoot(
  context: FabricContext,
  target: Target,
  roots: { fingerprint: string; publicKey: CryptoKey | null }[],
): Promise<string | null> {
  const url = new URL("/v1/status", target.url);
  const headers = new Headers({ accept: "application/json" });
  if (target.route?.length) headers.set("fabric-route", target.route.join(","));
  const signed = await signRequest(
    { method: "GET", url, headers, body: new Uint8Array() },
    context.keys,
    {
      target: target.id,
    },
  );
  const answer = await fetch(url, { headers: signed.headers, signal: AbortSignal.timeout(5000) });
  await answer.body?.cancel();
  const identity = answer.headers.get("fabric-identity");
  if (!identity) {
    const keyid = /keyid="([^"]+)"/.exec(answer.headers.get("signature-input") ?? "")?.[1];
    return roots.find((r) => r.fingerprint === keyid)?.fingerprint ?? null;
  }
  const usable = roots.filter((r): r is TrustRoot => r.publicKey !== null);
  return (await chainRootOf(usable, identity))?.fingerprint ?? null;
}

function printStatus(status: RotationStatus, progress: RotationProgress, json: boolean): void {
  if (json) {
    console.log(JSON.stringify({ ...status, services: progress }));
    return;
  }
  const lines = [`root      ${status.root}`];
  if (status.previous && status.until !== null) {
    const left = Math.round((status.until - Date.now()) / 1000);
    lines.push(
      `previous  ${status.previous}`,
      `grace     ${
        left > 0 ? `until ${new Date(status.until).toISOString()} (${left} s left)` : "over"
      }`,
    );
  } else {
    lines.push("previous  none: this fabric's root was never rotated");
  }
  const s = progress;
  lines.push(`services  ${s.current} of ${s.live} live services answer with the current root`);
  if (s.behind.length > 0) lines.push(`behind    ${s.behind.join(" ")}`);
  if (s.unknown.length > 0) lines.push(`unknown   ${s.unknown.join(" ")}`);
  console.log(lines.join("\n"));
}

/** Writes `text` to `path` (0600) through a temporary file and a rename. */
async function writeText(path: string, text: string): Promise<void> {
  const temporary = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(temporary, text, { createNew: true, mode: 0o600 });
  await Deno.rename(temporary, path);
}
