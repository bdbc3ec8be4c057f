/**
 * The new service's side of the bootstrap (DESIGN.md steps 4-5): read the
 * one-time password from standard input (a channel only this process reads;
 * never the environment, which stays readable in /proc), prove it to the
 * parent under the password's handle, open the sealed key bundle and check
 * the fabric fingerprint against the pin.
 * @module
 */
import { type KeyBundle, keyBundleSchema } from "./bundle.ts";
import { type FabricKeys, generateFabricKeys } from "../crypto/keys.ts";
import {
  bootstrapTranscript,
  derivePasswordKey,
  passwordHandle,
  proveBootstrap,
} from "../crypto/one_time_password.ts";
import {
  type EphemeralKey,
  generateEphemeralKey,
  openBundle,
  type SealedBundle,
} from "../crypto/seal.ts";
import { bundleInfo } from "./bundle.ts";
import { importPublicKey, rawPublicKey, verifyChain } from "../crypto/certificate.ts";
import { EXIT, type RegistryEndpoint } from "../types/mod.ts";
import { sleep } from "../config/retry.ts";
import type { ConfigureRequest } from "../types/wire.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";
import { readCapped } from "../base/read_capped.ts";

/** Largest bootstrap answer read, bytes: a sealed key bundle is a few KiB. */
const MAX_BUNDLE_ANSWER_BYTES = 1024 * 1024;

/** A bootstrap that failed; `exitCode` is what the process must exit with. */
export class BootstrapError extends Error {
  /** 69 unreachable, 77 refused, 78 bad configuration (EXIT). */
  readonly exitCode: number;
  /** Builds the error. */
  constructor(message: string, exitCode: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "BootstrapError";
    this.exitCode = exitCode;
  }
}

/** The environment a spawner gives a new service. */
export interface BootstrapEnv {
  password: string;
  parent: RegistryEndpoint;
  pin: string;
}

/** What a successful bootstrap yields. */
export interface BootstrapOutcome {
  /** The service's own keys, with its certificate chain and the fabric root. */
  keys: FabricKeys;
  registries: RegistryEndpoint[];
  parent: RegistryEndpoint;
  /** The X25519 key its certificate names (for MAC sessions). */
  x25519: EphemeralKey;
  /** What it is to be, when the answer says it (else it waits for `POST /v1/configure`). */
  configure?: ConfigureRequest;
}

/** Options of {@linkcode takeBootstrapEnv}. */
export interface TakeBootstrapEnvOptions {
  /** Where the password comes from. Default `Deno.stdin.readable`. */
  input?: ReadableStream<Uint8Array>;
  /** How long to wait for the password line, ms. Default 10000. */
  timeoutMs?: number;
}

/**
 * Reads `FABRIC_PARENT` (`ID@URL`) and `FABRIC_PIN` from the environment and
 * removes them, then reads the one-time password as one line from standard
 * input, where the launcher wrote it. Returns null without `FABRIC_PARENT`
 * (a root service).
 *
 * @throws {BootstrapError} (78) when the variables are malformed, when
 * `FABRIC_OTP` is in the environment (the password must not be there), or
 * when no password line arrives in time.
 */
export async function takeBootstrapEnv(
  options: TakeBootstrapEnvOptions = {},
): Promise<BootstrapEnv | null> {
  const inEnv = Deno.env.get("FABRIC_OTP") !== undefined;
  const parent = Deno.env.get("FABRIC_PARENT");
  const pin = Deno.env.get("FABRIC_PIN") ?? "";
  for (const name of ["FABRIC_OTP", "FABRIC_PARENT", "FABRIC_PIN"]) Deno.env.delete(name);
  if (inEnv) {
    throw new BootstrapError(
      'FABRIC_OTP must not be in the environment, where /proc shows it: the password comes on standard input (start services with "fabricd spawn")',
      EXIT.CONFIG,
    );
  }
  if (parent === undefined) return null;
  const at = parent.indexOf("@");
  if (at < 1 || !/^https?:\/\//.test(parent.slice(at + 1)) || !pin) {
    throw new BootstrapError(
      'FABRIC_PARENT must be ID@URL and FABRIC_PIN the fabric fingerprint: start services with "fabricd spawn"',
      EXIT.CONFIG,
    );
  }
  const read = await readLine(options.input ?? Deno.stdin.readable, {
    maxBytes: 256,
    timeoutMs: options.timeoutMs ?? 10_000,
  });
  const password = read.kind === "line" ? read.text : "";
  if (!PASSWORD.test(password)) {
    throw new BootstrapError(
      'No one-time password on standard input: start services with "fabricd spawn"',
      EXIT.CONFIG,
    );
  }
  return { password, parent: { id: parent.slice(0, at), url: parent.slice(at + 1) }, pin };
}

const PASSWORD = /^[A-Za-z0-9_-]{1,128}$/;
const SERVICE_ID = /^[a-z][a-z0-9-]{1,62}$/;

/** What a warm process learns from its spawner: who it becomes and how it bootstraps. */
export interface WarmHandOver {
  id: string;
  role: string;
  env: BootstrapEnv;
}

/** Options of {@linkcode takeWarmHandOver}. */
export interface TakeWarmHandOverOptions {
  /** Where the hand-over line comes from. Default `Deno.stdin.readable`. */
  input?: ReadableStream<Uint8Array>;
}

/**
 * A warm process (`fabricd --role R --warm`) waits, for as long as it takes,
 * for one line of JSON `{id, role, password, parent, pin}` (at most 1 KiB) on
 * its standard input, the pipe its spawner holds: it has no other channel
 * (it listens on nothing yet, and bootstrap variables in its environment are
 * refused). `parent` is `ID@URL`, as in `FABRIC_PARENT`. Returns null at the
 * end of input before any byte of a line: the spawner stopped its pool, or
 * died.
 *
 * @throws {BootstrapError} (78) when the bootstrap variables are in the
 * environment, or the line is empty, longer than 1 KiB or not a valid
 * hand-over.
 */
export async function takeWarmHandOver(
  options: TakeWarmHandOverOptions = {},
): Promise<WarmHandOver | null> {
  const inEnv = ["FABRIC_OTP", "FABRIC_PARENT", "FABRIC_PIN"].filter((name) =>
    Deno.env.get(name) !== undefined
  );
  for (const name of inEnv) Deno.env.delete(name);
  if (inEnv.length > 0) {
    throw new BootstrapError(
      `A warm process takes its hand-over on standard input only, not ${inEnv.join(", ")}`,
      EXIT.CONFIG,
    );
  }
  const read = await readLine(options.input ?? Deno.stdin.readable, {
    maxBytes: MAX_HAND_OVER_BYTES,
  });
  if (read.kind === "end") return null;
  if (read.kind === "too long") {
    throw new BootstrapError(
      `The warm hand-over line is longer than ${MAX_HAND_OVER_BYTES} bytes`,
      EXIT.CONFIG,
    );
  }
  const bad = "The warm hand-over line is not {id, role, password, parent, pin}";
  let value: Record<string, unknown>;
  try {
    // An empty line is no JSON either: refused like any other bad line.
    value = JSON.parse(read.text);
  } catch (cause) {
    throw new BootstrapError(bad, EXIT.CONFIG, { cause });
  }
  const { id, role, password, parent, pin, ...rest } = value ?? {};
  const at = typeof parent === "string" ? parent.indexOf("@") : -1;
  if (
    Object.keys(rest).length > 0 || typeof id !== "string" || !SERVICE_ID.test(id) ||
    typeof role !== "string" || typeof password !== "string" || !PASSWORD.test(password) ||
    typeof pin !== "string" || !pin || typeof parent !== "string" || at < 1 ||
    !/^https?:\/\/[^\s]+$/.test(parent.slice(at + 1))
  ) {
    throw new BootstrapError(bad, EXIT.CONFIG);
  }
  return {
    id,
    role,
    env: { password, parent: { id: parent.slice(0, at), url: parent.slice(at + 1) }, pin },
  };
}

/** Longest warm hand-over line, bytes (its newline not counted). */
const MAX_HAND_OVER_BYTES = 1024;

/**
 * What {@linkcode readLine} found: a line (its newline dropped, trimmed), the
 * end of input (or of the wait) before any byte, or a line over the limit.
 */
type LineRead = { kind: "line"; text: string } | { kind: "end" } | { kind: "too long" };

/**
 * The first line of `input`, at most `maxBytes` before its newline; bytes
 * without a newline count as the line when the input ends or `timeoutMs`
 * (default: no limit) passes. Stops reading as soon as the line is too long.
 */
async function readLine(
  input: ReadableStream<Uint8Array>,
  limits: { maxBytes: number; timeoutMs?: number },
): Promise<LineRead> {
  const reader = input.getReader();
  const kept = new Uint8Array(limits.maxBytes);
  let size = 0;
  let any = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => {
    if (limits.timeoutMs !== undefined) timer = setTimeout(() => resolve(null), limits.timeoutMs);
  });
  try {
    while (true) {
      const chunk = await Promise.race([reader.read(), timeout]);
      if (chunk === null || chunk.done) break;
      any ||= chunk.value.length > 0;
      const end = chunk.value.indexOf(0x0a);
      const part = end >= 0 ? chunk.value.subarray(0, end) : chunk.value;
      if (size + part.length > limits.maxBytes) return { kind: "too long" };
      kept.set(part, size);
      size += part.length;
      if (end >= 0) break;
    }
  } finally {
    clearTimeout(timer);
    // Nothing more is read; a stream already closed is fine.
    reader.cancel().catch(() => {});
  }
  if (!any) return { kind: "end" };
  return { kind: "line", text: new TextDecoder().decode(kept.subarray(0, size)).trim() };
}

/** Options of {@linkcode bootstrapFromParent}. */
export interface BootstrapOptions {
  serviceId: string;
  endpoint: string;
  host: string;
  /** Total time to keep trying an unreachable parent, ms. Default 10000. */
  reachTimeoutMs?: number;
}

/**
 * Fetches the fabric keys from the parent.
 * @throws {BootstrapError} 69 when the parent cannot be reached, 77 when it
 * refuses the password, 78 when the bundle's fingerprint is not the pin.
 */
export async function bootstrapFromParent(
  env: BootstrapEnv,
  options: BootstrapOptions,
): Promise<BootstrapOutcome> {
  const ephemeral = await generateEphemeralKey();
  // The service's own signing key: its private half never leaves this process.
  const own = await generateFabricKeys();
  const signingKey = await rawPublicKey(own.publicKey);
  const passwordKey = derivePasswordKey(env.password);
  const transcript = bootstrapTranscript({
    serviceId: options.serviceId,
    publicKey: ephemeral.publicKey,
    endpoint: options.endpoint,
    signingKey,
  });
  const body = JSON.stringify({
    id: options.serviceId,
    handle: passwordHandle(env.password),
    publicKey: ephemeral.publicKey,
    signingKey,
    endpoint: options.endpoint,
    proof: proveBootstrap(passwordKey, transcript),
    host: options.host,
    pid: Deno.pid,
  });
  const answer = await postWithRetry(new URL("/v1/bootstrap", env.parent.url), body, options);
  // Whoever holds the parent's port answers here (a process that took it, too): bounded.
  const read = await readCapped(answer, MAX_BUNDLE_ANSWER_BYTES);
  if (!read.whole) {
    throw new BootstrapError(
      `Parent "${env.parent.id}" answered more than ${MAX_BUNDLE_ANSWER_BYTES} bytes: ` +
        "not a fabricd parent; check the parent endpoint",
      EXIT.REFUSED,
    );
  }
  const text = new TextDecoder().decode(read.bytes);
  if (!answer.ok) {
    const said = safeError(text);
    // 4xx: the parent heard us and said no; 5xx: it cannot serve right now.
    const code = answer.status < 500 ? EXIT.REFUSED : EXIT.UNREACHABLE;
    throw new BootstrapError(`Parent "${env.parent.id}" answered ${answer.status}: ${said}`, code);
  }
  let bundle: KeyBundle;
  try {
    const sealed = JSON.parse(text) as SealedBundle;
    const plain = await openBundle(sealed, {
      privateKey: ephemeral.privateKey,
      passwordKey,
      info: bundleInfo(options.serviceId),
    });
    bundle = keyBundleSchema.parse(JSON.parse(new TextDecoder().decode(plain)));
  } catch (cause) {
    throw new BootstrapError(
      `Cannot open the key bundle from "${env.parent.id}": ${
        cause instanceof Error ? cause.message : cause
      }`,
      EXIT.REFUSED,
      { cause },
    );
  }
  const keys = await keysFrom(bundle, { own, serviceId: options.serviceId, pin: env.pin });
  return {
    keys,
    registries: bundle.registries,
    parent: bundle.parent,
    x25519: ephemeral,
    ...(bundle.configure ? { configure: bundle.configure } : {}),
  };
}

/**
 * The service's keys: its own pair, and the chain the bundle certifies it
 * with, checked against the pinned root before anything is signed with it.
 * @throws {BootstrapError} 78 when the root is not the pin or the chain does not certify this service.
 */
async function keysFrom(
  bundle: KeyBundle,
  expected: { own: FabricKeys; serviceId: string; pin: string },
): Promise<FabricKeys> {
  const root = await importPublicKey(bundle.root);
  const fingerprint = root.fingerprint;
  if (fingerprint !== expected.pin || bundle.fingerprint !== expected.pin) {
    throw new BootstrapError(
      `Fabric key fingerprint ${fingerprint} does not match the pin ${expected.pin}: refusing to join`,
      EXIT.CONFIG,
    );
  }
  const chain = await verifyChain(root, bundle.identity, Date.now() / 1000);
  if (
    typeof chain === "string" || chain.signer.id !== expected.serviceId ||
    chain.fingerprint !== expected.own.fingerprint
  ) {
    const why = typeof chain === "string" ? chain : "it certifies another service or key";
    throw new BootstrapError(`The parent's certificate chain is unusable: ${why}`, EXIT.CONFIG);
  }
  return { ...expected.own, identity: bundle.identity, root, expires: chain.signer.expires };
}

/** How much longer than the reach deadline an answer may take (the parent records the child first), ms. */
const ANSWER_GRACE_MS = 20_000;

async function postWithRetry(url: URL, body: string, options: BootstrapOptions): Promise<Response> {
  const deadline = Date.now() + (options.reachTimeoutMs ?? 10_000);
  let delay = 100;
  for (;;) {
    try {
      const answer = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        // The parent records this service before it answers: the answer may take longer.
        signal: AbortSignal.timeout(Math.max(500, deadline - Date.now()) + ANSWER_GRACE_MS),
      });
      // 429: the parent limits refused attempts from this address (others may
      // share it); wait as told while time remains.
      const wait = Math.min(5, Number(answer.headers.get("retry-after") ?? "1") || 1) * 1000;
      if (answer.status !== 429 || Date.now() + wait >= deadline) return answer;
      await answer.body?.cancel();
      await sleep(wait);
      continue;
    } catch (cause) {
      if (Date.now() + delay >= deadline) {
        throw new BootstrapError(
          `Cannot reach parent at ${url.origin}: ${cause instanceof Error ? cause.message : cause}`,
          EXIT.UNREACHABLE,
          { cause },
        );
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 1000);
    }
  }
}

function safeError(text: string): string {
  try {
    const value = JSON.parse(text) as { error?: unknown };
    if (typeof value.error === "string") return value.error;
  } catch {
    // Not JSON: fall through to the raw text.
  }
  return text.slice(0, 200);
}
