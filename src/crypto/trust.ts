/**
 * Who signed a message: the key a signature's `keyid` names, resolved to the
 * operator (the fabric's root key) or to a service through the chain in its
 * `Fabric-Identity` header (`certificate.ts`). Verified chains are cached
 * (bounded) until they expire; revoked incarnations are refused.
 * @module
 */
import {
  chainRootOf,
  IDENTITY_HEADER,
  type Signer,
  type TrustRoot,
  verifyChain,
} from "./certificate.ts";
import { type FabricKeys, MAX_KEY_FILE_BYTES } from "./keys.ts";
import { readSmallFile } from "../base/small_file.ts";
import { type Rotation, verifyRotation } from "./rotation.ts";

/** A resolved signer and the key its signature must verify with. */
export type Resolved =
  | { ok: true; publicKey: CryptoKey; signer: Signer }
  | { ok: false; reason: string };

/** Options of {@linkcode TrustStore}. */
export interface TrustOptions {
  /** Chains kept verified. Default 1024. */
  maxChains?: number;
  /** Revoked incarnations kept. Default 65,536. */
  maxRevoked?: number;
  /** The clock, ms since the epoch. Default `Date.now`. */
  now?: () => number;
}

/** Options of {@linkcode TrustStore.resolve}. */
export interface ResolveOptions {
  /**
   * Wait for the rotation source when a key or chain of an unknown root comes
   * in, and resolve again with what it taught. False for requests, which
   * are refused at once while the source is asked in the background. Default true.
   */
  wait?: boolean;
}

/**
 * Where a trust store asks for the fabric's newest rotation statement when a
 * key or chain of an unknown root comes in (docs/security.md "Key rotation"):
 * the registry for a service, the key file's companion for the operator.
 */
export type RotationSource = () => Promise<string | null>;

/** Least time between two asks of a {@linkcode RotationSource}, ms. */
const LEARN_EVERY_MS = 2000;
/** Retired roots remembered, to say why their chains are refused. */
const MAX_RETIRED = 4;

/**
 * The fabric root (two roots during a rotation's grace), a cache of verified
 * chains, and the revoked incarnations.
 */
export class TrustStore {
  #primary: TrustRoot;
  /** The root rotated out, trusted until `until` (seconds since the epoch). */
  #retiring: { root: TrustRoot; until: number } | null = null;
  #retired: TrustRoot[] = [];
  #rotation: Rotation | null = null;
  #chains = new Map<
    string,
    {
      publicKey: CryptoKey;
      fingerprint: string;
      signer: Signer;
      links: { id: string; incarnation: number }[];
      root: string;
    }
  >();
  /**
   * The links of the chain each verified signer came with, for as long as
   * something holds the signer (a MAC session opened with it).
   */
  #linksOf = new WeakMap<Signer, { id: string; incarnation: number }[]>();
  /** Revoked: every incarnation of an ID up to the number kept here. */
  #revoked = new Map<string, number>();
  /** Revoked with cascade (`fabricd revoke`): chains through them are refused too. */
  #cascading = new Map<string, number>();
  #maxChains: number;
  #maxRevoked: number;
  #now: () => number;
  #source: RotationSource | undefined;
  #learning: Promise<void> | null = null;
  #learntAt = -Infinity;
  #listeners: ((rotation: Rotation) => void)[] = [];

  /** Trusts `root` and what chains to it. */
  constructor(root: TrustRoot, options: TrustOptions = {}) {
    this.#primary = root;
    this.#maxChains = options.maxChains ?? 1024;
    this.#maxRevoked = options.maxRevoked ?? 65_536;
    this.#now = options.now ?? Date.now;
  }

  /** The current root: the newest one this store knows. */
  get root(): TrustRoot {
    return this.#primary;
  }

  /** The newest rotation adopted, or null. */
  get rotation(): Rotation | null {
    return this.#rotation;
  }

  /** The roots trusted now: the current one, and the old one until its grace ends. */
  roots(): TrustRoot[] {
    const retiring = this.#retiring;
    if (retiring && this.#now() / 1000 > retiring.until) this.#retire();
    return this.#retiring ? [this.#primary, this.#retiring.root] : [this.#primary];
  }

  /** Where to ask for the newest rotation statement when an unknown root comes in. */
  set source(source: RotationSource | undefined) {
    this.#source = source;
  }

  /** Calls `listener` with every rotation adopted from now on. */
  onRotation(listener: (rotation: Rotation) => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Adopts a verified rotation: from one of its roots, trusts the other too
   * until the grace ends, and the new root is current from now on.
   * @returns null when adopted (or known already), else why it cannot be.
   */
  adopt(rotation: Rotation): string | null {
    const current = this.#primary.fingerprint;
    if (this.#rotation?.token === rotation.token) return null;
    if (rotation.new.fingerprint === current) {
      // Told of the rotation that made the current root: the old one is trusted for the grace.
      this.#retiring = { root: rotation.old, until: rotation.until };
    } else if (rotation.old.fingerprint === current) {
      if (this.#retiring) this.#retire();
      this.#retiring = { root: this.#primary, until: rotation.until };
      this.#primary = rotation.new;
    } else {
      return `the fabric's root was rotated from ${rotation.old.fingerprint} to ${rotation.new.fingerprint}, ` +
        `and this holder trusts ${current}: it missed an earlier rotation and must be restarted`;
    }
    this.#rotation = rotation;
    this.roots();
    for (const listener of this.#listeners) listener(rotation);
    return null;
  }

  /**
   * Asks the rotation source for the newest statement and adopts it (at most
   * every 2 s; callers meanwhile share the one ask).
   * @returns Whether a new rotation was adopted.
   */
  refresh(): Promise<boolean> {
    return this.#source ? this.#learn() : Promise.resolve(false);
  }

  /**
   * Verifies a rotation statement and adopts it ({@linkcode adopt}).
   * @returns null when adopted, else why not.
   */
  async adoptStatement(token: string): Promise<string | null> {
    const rotation = await verifyRotation(token);
    return typeof rotation === "string" ? rotation : this.adopt(rotation);
  }

  /**
   * Resolves the signer of a message whose signature names `keyid` and
   * carries the chain `identity` (null when absent). A key or chain of a root
   * this store does not know makes it ask its rotation source (at most every
   * 2 s, one ask at a time): with `options.wait` false it answers the refusal
   * at once and the ask runs in the background, so that a forged request (any
   * stranger can name a made-up key) never waits on the source; otherwise it
   * waits for the ask and tries again.
   */
  async resolve(
    keyid: string,
    identity: string | null,
    options: ResolveOptions = {},
  ): Promise<Resolved> {
    const first = await this.#resolve(keyid, identity);
    if (first.ok || !this.#source || !/fabric root|not this fabric's key/.test(first.reason)) {
      return first;
    }
    if (options.wait === false) {
      // Bounded by #learn: one ask at a time, at most every 2 s, errors dropped.
      this.#learn().catch(() => {});
      return first;
    }
    if (!await this.#learn()) return first;
    return await this.#resolve(keyid, identity);
  }

  async #resolve(keyid: string, identity: string | null): Promise<Resolved> {
    const roots = this.roots();
    const root = roots.find((r) => r.fingerprint === keyid);
    if (root) return { ok: true, publicKey: root.publicKey, signer: { kind: "operator" } };
    if (this.#retired.some((r) => r.fingerprint === keyid)) {
      return {
        ok: false,
        reason: `Key "${keyid}" is a retired fabric root: sign with the current key file`,
      };
    }
    if (!identity) {
      return {
        ok: false,
        reason: `Unknown key "${keyid}": not this fabric's key, and no Fabric-Identity`,
      };
    }
    const nowSeconds = this.#now() / 1000;
    let known = this.#chains.get(identity);
    if (
      known && known.signer.kind === "service" &&
      (known.signer.expires + 5 < nowSeconds || !roots.some((r) => r.fingerprint === known!.root))
    ) {
      this.#chains.delete(identity);
      known = undefined;
    }
    if (!known) {
      const verified = await verifyChain(roots, identity, nowSeconds);
      if (typeof verified === "string") {
        return { ok: false, reason: `Identity refused: ${await this.#why(verified, identity)}` };
      }
      known = verified;
      this.#linksOf.set(verified.signer, verified.links);
      if (this.#chains.size >= this.#maxChains) {
        this.#chains.delete(this.#chains.keys().next().value!);
      }
      this.#chains.set(identity, known);
    }
    if (known.fingerprint !== keyid) {
      return {
        ok: false,
        reason: `Key "${keyid}" is not the key of the Fabric-Identity's service`,
      };
    }
    const signer = known.signer;
    const revoked = this.revokedLink(signer);
    if (revoked) {
      return {
        ok: false,
        reason: `Identity of "${revoked.id}" incarnation ${revoked.incarnation} is revoked`,
      };
    }
    return { ok: true, publicKey: known.publicKey, signer };
  }

  /**
   * Revokes every incarnation of `id` up to `incarnation`; with `cascade`,
   * every chain through those incarnations too.
   */
  revoke(id: string, incarnation: number, cascade = false): void {
    for (const table of cascade ? [this.#revoked, this.#cascading] : [this.#revoked]) {
      if (incarnation <= (table.get(id) ?? 0)) continue;
      table.delete(id);
      if (table.size >= this.#maxRevoked) table.delete(table.keys().next().value!);
      table.set(id, incarnation);
    }
  }

  /**
   * The link of `signer`'s chain that is revoked, if any: its own
   * incarnation, or one above it revoked with cascade (fabricd revoke), since
   * what a revoked service certified dies with it. A signer this trust did
   * not verify is looked up by its own ID and incarnation only.
   */
  revokedLink(signer: Signer): { id: string; incarnation: number } | undefined {
    if (signer.kind !== "service") return undefined;
    const links = this.#linksOf.get(signer) ?? [signer];
    return links.find((link, i) =>
      i === links.length - 1
        ? this.isRevoked(link.id, link.incarnation)
        : link.incarnation <= (this.#cascading.get(link.id) ?? 0)
    );
  }

  /** Whether incarnation `incarnation` of `id` is revoked. */
  isRevoked(id: string, incarnation: number): boolean {
    return incarnation <= (this.#revoked.get(id) ?? 0);
  }

  /** A chain's refusal, told more precisely when its root was retired. */
  async #why(reason: string, identity: string): Promise<string> {
    if (!reason.endsWith("is not signed by the fabric root")) return reason;
    const retired = await chainRootOf(this.#retired, identity);
    if (!retired) return reason;
    const sub = /^certificate of "([^"]+)"/.exec(reason)?.[1] ?? "?";
    return `certificate of "${sub}" is signed by a retired fabric root (${retired.fingerprint}): restart the service`;
  }

  #retire(): void {
    if (!this.#retiring) return;
    this.#retired.push(this.#retiring.root);
    if (this.#retired.length > MAX_RETIRED) this.#retired.shift();
    this.#retiring = null;
  }

  /** Asks the rotation source once; true when it taught this store a new root. */
  #learn(): Promise<boolean> {
    const before = this.#rotation?.token;
    if (!this.#learning) {
      if (this.#now() - this.#learntAt < LEARN_EVERY_MS) return Promise.resolve(false);
      this.#learntAt = this.#now();
      this.#learning = (async () => {
        const token = await this.#source!().catch(() => null);
        if (token) await this.adoptStatement(token);
      })().finally(() => (this.#learning = null));
    }
    return this.#learning.then(() => this.#rotation?.token !== before);
  }
}

const stores = new WeakMap<FabricKeys, TrustStore>();

/**
 * The trust store of a holder of `keys`: rooted at `keys.root` (a service),
 * or at the keys themselves (the operator), with the old root of the
 * rotation that made them (`keys.rotation`) during its grace. Keys read from
 * a key file learn a later rotation from its `.rotation` companion. One per
 * keys object.
 */
export function trustOf(keys: FabricKeys): TrustStore {
  let store = stores.get(keys);
  if (!store) {
    store = keys.trust ??
      new TrustStore(keys.root ?? { publicKey: keys.publicKey, fingerprint: keys.fingerprint });
    if (keys.rotation) store.adopt(keys.rotation);
    const file = keys.file;
    if (file) store.source = () => readStatement(file);
    stores.set(keys, store);
  }
  return store;
}

/**
 * The key a signature must verify with, and its signer; `wait` as in
 * {@linkcode ResolveOptions} (false for requests).
 */
export async function resolveKey(
  options: { trust?: TrustStore | undefined; publicKey?: CryptoKey | undefined; wait?: boolean },
  keyid: string,
  headers: Headers,
): Promise<Resolved> {
  if (options.trust) {
    return await options.trust.resolve(keyid, headers.get(IDENTITY_HEADER), {
      wait: options.wait !== false,
    });
  }
  return { ok: true, publicKey: options.publicKey!, signer: { kind: "operator" } };
}

/** The statement in the `.rotation` companion of key file `file`, or null. */
async function readStatement(file: string): Promise<string | null> {
  const text = await readSmallFile(`${file}.rotation`, MAX_KEY_FILE_BYTES).catch(() => null);
  return text?.trim() || null;
}
