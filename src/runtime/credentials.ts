/**
 * What a service holds once it has its keys: the fabric keys, the registries
 * and the parent as it reaches them, one signed client for its whole life and
 * the key hand-over it answers its own children's bootstraps with. One part of
 * a running service (`service.ts`).
 * @module
 */
import { FabricClient } from "../client/fabric_client.ts";
import { RegistryClient } from "../client/registry_client.ts";
import { KeyHandover } from "../bootstrap/handover.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import type { RegistryEndpoint } from "../types/mod.ts";

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
    this.client = new FabricClient(keys);
    this.registry = new RegistryClient(this.client, registries);
    this.handover = new KeyHandover({ keys, registries: () => registries, self });
  }

  /** Where a request for `target` goes when it is not below this service. */
  upstream(target: string): string | undefined {
    const registry = this.registries.find((r) => r.id === target);
    return registry?.url ?? this.parent?.url;
  }
}
