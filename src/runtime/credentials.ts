/**
 * What a service holds once it has its keys: the fabric keys, the registries
 * and the parent as it reaches them, one signed client for its whole life and
 * the key hand-over it answers its own children's bootstraps with. One part of
 * a running service (`service.ts`).
 * @module
 */
import type { RoleDeps } from "./role.ts";
import { trustOf } from "../crypto/trust.ts";
import { log } from "../config/logging.ts";
import { isChildRoute, type Signer, verifyChain } from "../crypto/certificate.ts";
import { reloadKeyFile } from "../crypto/keys.ts";
import { fetchRotation } from "../registry/rotation_fetch.ts";
import { ConflictError } from "../types/errors.ts";
import type { ServiceState } from "../types/mod.ts";

/** States after which an incarnation is not renewed. */
const ENDED: readonly ServiceState[] = ["STOPPED", "LOST", "FAILED", "DEAD"];
import { FabricClient } from "../client/fabric_client.ts";
import { RegistryClient } from "../client/registry_client.ts";
import { KeyHandover } from "../bootstrap/handover.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import type { RegistryEndpoint } from "../types/mod.ts";
import { clearInterval, setInterval } from "../base/timers.ts";

/** The keys and the ways out of one service; see the module doc. */
export class ServiceCredentials {
  readonly keys: FabricKeys;
  readonly registries: RegistryEndpoint[];
  /** The parent as this service reaches it, or null for a root. */
  readonly parent: RegistryEndpoint | null;
  /**
   * One client for the life of the service: it remembers which registry
   * endpoint answers, so a dead replica is not tried first on every call.
   */
  readonly client: FabricClient;
  readonly registry: RegistryClient;
  readonly handover: KeyHandover;
  #renewing: ReturnType<typeof setInterval> | undefined;
  #revocationSeq: number | null = null;
  #syncing = false;
  #catchingUp = false;
  #self: { id: string; url: string };
  #logger = log("service");

  /** The credentials of service `self`. */
  constructor(
    self: { id: string; url: string },
    keys: FabricKeys,
    registries: RegistryEndpoint[],
    parent: RegistryEndpoint | null,
  ) {
    this.keys = keys;
    this.registries = registries;
    this.parent = parent;
    this.#self = self;
    const trust = trustOf(keys);
    // Root services learn a rotation from their key file's companion (trust.ts); the others ask the registry.
    if (!keys.file) trust.source = () => fetchRotation(keys, registries);
    trust.onRotation(() => this.#catchUp());
    // Direct calls (the registry, children, peers) go in MAC sessions after one
    // handshake each (docs/protocol.md 2.13); relayed ones stay Ed25519-signed.
    this.client = new FabricClient(keys, { sessions: true });
    this.registry = new RegistryClient(this.client, registries);
    this.handover = new KeyHandover({ keys, registries: () => registries, self });
  }

  /**
   * A new certificate for `signer`, which must be a current child of this
   * service (at `route`): its route extends this one by itself, and the
   * registry holds it at the incarnation it is certified for, not ended.
   * @throws {ConflictError} when it is not.
   */
  async renewChild(
    signer: Signer,
    route: readonly string[],
  ): Promise<{ identity: string; expires: number }> {
    if (signer.kind !== "service") {
      throw new ConflictError("The operator's key is the root: it has no certificate to renew");
    }
    const record = isChildRoute(route, signer.route)
      ? (await this.registry.get(signer.id))?.record
      : undefined;
    if (!record || record.incarnation !== signer.incarnation || ENDED.includes(record.state)) {
      throw new ConflictError(
        `"${signer.id}" incarnation ${signer.incarnation} is not a current child of this service: no renewal`,
      );
    }
    return await this.handover.renew(signer);
  }

  /**
   * Keeps this service's own chain fresh: asks the parent for a new
   * certificate once less than half of its lifetime is left, checking every
   * `checkMs`. Nothing to do for the operator's keys (no chain).
   */
  keepRenewed(_self: { id: string }, checkMs = 30_000): void {
    if (!this.keys.identity || !this.parent || this.#renewing) return;
    const lifetime = (this.keys.expires ?? 0) - Date.now() / 1000;
    const half = Math.max(5, lifetime / 2);
    this.#renewing = setInterval(() => {
      const left = (this.keys.expires ?? 0) - Date.now() / 1000;
      if (left > half) return;
      this.#renew().catch((error) =>
        this.#logger.warn("Cannot renew this service's certificate: {error}", {
          error: String(error),
        })
      );
    }, Math.min(checkMs, Math.max(1000, half * 250)));
  }

  /**
   * What a heartbeat answer says: the revocation mark, and the newest root
   * the registry knows (`root`, during and after a rotation). A root this
   * service does not trust yet is learnt; then the service catches up.
   */
  heard(answer: { revocations?: number; root?: string }): void {
    this.syncRevocations(answer.revocations);
    const trust = trustOf(this.keys);
    if (answer.root && !trust.roots().some((r) => r.fingerprint === answer.root)) {
      void trust.refresh().then(() => this.#catchUp());
      return;
    }
    this.#catchUp();
  }

  /**
   * After a rotation: a root service takes the new key from its key file; any
   * other service whose chain still starts at the old root renews from its
   * parent, at every heartbeat, until its parent hands it a chain from the
   * new root (docs/security.md "Key rotation"). One attempt at a time.
   */
  #catchUp(): void {
    const current = trustOf(this.keys).root.fingerprint;
    const behind = this.keys.identity
      ? this.keys.root?.fingerprint !== current && this.parent !== null
      : this.keys.fingerprint !== current && this.keys.file !== undefined;
    if (!behind || this.#catchingUp) return;
    this.#catchingUp = true;
    const step = this.keys.identity ? this.#renew() : this.#takeNewKey(current);
    step.catch((error) =>
      this.#logger.warn("Cannot move to the new fabric root yet: {error}", {
        error: String(error),
      })
    ).finally(() => (this.#catchingUp = false));
  }

  /** A root service: takes the new root key from the key file once it holds it. */
  async #takeNewKey(fingerprint: string): Promise<void> {
    await reloadKeyFile(this.keys);
    if (this.keys.fingerprint !== fingerprint) {
      throw new Error(`the key file does not hold the new root ${fingerprint} yet`);
    }
    this.#logger.info("Signing with the new fabric root {fingerprint}", { fingerprint });
  }

  /** Asks the parent for a new certificate; keeps it when it certifies this service's key. */
  async #renew(): Promise<void> {
    const parent = this.parent!;
    const answer = await this.client.call<{ identity: string }>(
      { id: parent.id, url: parent.url },
      { method: "POST", path: "/v1/renew", body: {} },
    );
    const trust = trustOf(this.keys);
    const chain = await verifyChain(trust.roots(), answer.identity, Date.now() / 1000);
    if (
      typeof chain === "string" || chain.signer.id !== this.#self.id ||
      chain.fingerprint !== this.keys.fingerprint
    ) {
      throw new Error(
        `the renewed chain is unusable: ${
          typeof chain === "string" ? chain : "another service or key"
        }`,
      );
    }
    const root = trust.roots().find((r) => r.fingerprint === chain.root)!;
    const moved = root.fingerprint !== this.keys.root?.fingerprint;
    this.keys.identity = answer.identity;
    this.keys.expires = chain.signer.expires;
    this.keys.root = root;
    if (moved) {
      this.#logger.info("Re-certified from the fabric root {fingerprint}", {
        fingerprint: root.fingerprint,
      });
    }
  }

  /**
   * Brings the revocations this service refuses up to the registry's mark
   * `seq` (from a heartbeat answer): the whole list the first time, then what
   * changed since. One fetch at a time; a failed one is tried at the next mark.
   */
  syncRevocations(seq: number | undefined): void {
    if (
      seq === undefined || this.#syncing ||
      (this.#revocationSeq !== null && seq <= this.#revocationSeq)
    ) return;
    this.#syncing = true;
    const trust = trustOf(this.keys);
    void (async () => {
      let more = true;
      while (more) {
        const page = await this.registry.revocations(this.#revocationSeq ?? undefined);
        for (const r of page.revoked) trust.revoke(r.id, r.incarnation, r.cascade === true);
        this.#revocationSeq = page.seq;
        more = page.more;
      }
    })().catch((error) =>
      this.#logger.warn("Cannot fetch the revocation list: {error}", { error: String(error) })
    ).finally(() => (this.#syncing = false));
  }

  /** Stops renewing. */
  stopRenewing(): void {
    clearInterval(this.#renewing);
    this.#renewing = undefined;
  }

  /** What a role may use of these credentials (`role.ts`: keys, registry, parent, upstream). */
  roleDeps(): Pick<RoleDeps, "keys" | "registry" | "parent" | "registries" | "upstream"> {
    return {
      keys: this.keys,
      registry: this.registry,
      parent: this.parent ? { id: this.parent.id, url: this.parent.url } : null,
      registries: [...this.registries],
      upstream: (target) => this.upstream(target),
    };
  }

  /** Where a request for `target` goes when it is not below this service. */
  upstream(target: string): string | undefined {
    const registry = this.registries.find((r) => r.id === target);
    return registry?.url ?? this.parent?.url;
  }
}
