/**
 * Who signed a message: the key a signature's `keyid` names, resolved to the
 * operator (the fabric's root key) or to a service through the chain in its
 * `Fabric-Identity` header (`certificate.ts`). Verified chains are cached
 * (bounded) until they expire; revoked incarnations are refused.
 * @module
 */
import { IDENTITY_HEADER, type Signer, type TrustRoot, verifyChain } from "./certificate.ts";
import type { FabricKeys } from "./keys.ts";

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

/** The fabric root, a cache of verified chains, and the revoked incarnations. */
export class TrustStore {
  readonly root: TrustRoot;
  #chains = new Map<
    string,
    {
      publicKey: CryptoKey;
      fingerprint: string;
      signer: Signer;
      links: { id: string; incarnation: number }[];
    }
  >();
  /** Revoked: every incarnation of an ID up to the number kept here. */
  #revoked = new Map<string, number>();
  /** Revoked with cascade (`fabricd revoke`): chains through them are refused too. */
  #cascading = new Map<string, number>();
  #maxChains: number;
  #maxRevoked: number;
  #now: () => number;

  /** Trusts `root` and what chains to it. */
  constructor(root: TrustRoot, options: TrustOptions = {}) {
    this.root = root;
    this.#maxChains = options.maxChains ?? 1024;
    this.#maxRevoked = options.maxRevoked ?? 65_536;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Resolves the signer of a message whose signature names `keyid` and
   * carries the chain `identity` (null when absent).
   */
  async resolve(keyid: string, identity: string | null): Promise<Resolved> {
    if (keyid === this.root.fingerprint) {
      return { ok: true, publicKey: this.root.publicKey, signer: { kind: "operator" } };
    }
    if (!identity) {
      return {
        ok: false,
        reason: `Unknown key "${keyid}": not this fabric's key, and no Fabric-Identity`,
      };
    }
    const nowSeconds = this.#now() / 1000;
    let known = this.#chains.get(identity);
    if (known && known.signer.kind === "service" && known.signer.expires + 5 < nowSeconds) {
      this.#chains.delete(identity);
      known = undefined;
    }
    if (!known) {
      const verified = await verifyChain(this.root, identity, nowSeconds);
      if (typeof verified === "string") {
        return { ok: false, reason: `Identity refused: ${verified}` };
      }
      known = verified;
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
    // The signer's own incarnation, and any link revoked with cascade (fabricd
    // revoke): what a revoked service certified dies with it.
    const revoked = known.links.find((link, i) =>
      i === known.links.length - 1
        ? this.isRevoked(link.id, link.incarnation)
        : link.incarnation <= (this.#cascading.get(link.id) ?? 0)
    );
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

  /** Whether incarnation `incarnation` of `id` is revoked. */
  isRevoked(id: string, incarnation: number): boolean {
    return incarnation <= (this.#revoked.get(id) ?? 0);
  }
}

const stores = new WeakMap<FabricKeys, TrustStore>();

/**
 * The trust store of a holder of `keys`: rooted at `keys.root` (a service),
 * or at the keys themselves (the operator). One per keys object.
 */
export function trustOf(keys: FabricKeys): TrustStore {
  let store = stores.get(keys);
  if (!store) {
    store = keys.trust ??
      new TrustStore(keys.root ?? { publicKey: keys.publicKey, fingerprint: keys.fingerprint });
    stores.set(keys, store);
  }
  return store;
}

/** The key a signature must verify with, and its signer. */
export async function resolveKey(
  options: { trust?: TrustStore | undefined; publicKey?: CryptoKey | undefined },
  keyid: string,
  headers: Headers,
): Promise<Resolved> {
  if (options.trust) return await options.trust.resolve(keyid, headers.get(IDENTITY_HEADER));
  return { ok: true, publicKey: options.publicKey!, signer: { kind: "operator" } };
}
