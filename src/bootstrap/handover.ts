/**
 * The parent's side of the bootstrap (DESIGN.md steps 2 and 4): one-time
 * passwords, checking a child's proof, and sealing the key bundle for it.
 * A child names its pending password by the password's handle, so strangers
 * who know its (public) service ID cannot touch it; refused attempts are
 * rate-limited per source address.
 * @module
 */
import { RateLimiter } from "../api/rate_limiter.ts";
import type { BootstrapRequest, ConfigureRequest, ReadyRequest } from "../types/wire.ts";
import { bundleInfo, type KeyBundle } from "./bundle.ts";
import {
  CERT_SECONDS,
  issueCertificate,
  rawPublicKey,
  type Signer,
} from "../crypto/certificate.ts";

/** A service that signed (not the operator). */
type ServiceSigner = Extract<Signer, { kind: "service" }>;
import { BootstrapRefusedError, ConflictError, RateLimitedError } from "../types/errors.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import {
  bootstrapTranscript,
  OneTimePasswords,
  REFUSED_MESSAGE,
} from "../crypto/one_time_password.ts";
import { peerKeyProblem, sealBundle, type SealedBundle } from "../crypto/seal.ts";
import type { RegistryEndpoint, ServiceRecord } from "../types/mod.ts";

/** What a child told its parent when it bootstrapped. */
export interface BootstrapArrival {
  endpoint: string;
  host: string;
  pid: number;
}

/** A password handed out and the child's arrival awaited. */
export interface ExpectedChild {
  /** The one-time password, to pass on a channel only the child reads (its stdin). */
  password: string;
  /**
   * Resolves when the child has proven its password; its bootstrap answer
   * then waits for {@linkcode ExpectedChild.configure}.
   */
  arrived: Promise<BootstrapArrival>;
  /** What the child is to be: sealed into its bootstrap answer, which goes out now. */
  configure(body: ConfigureRequest): void;
  /**
   * Resolves with the child's ready report (`POST /v1/ready`, signed by the
   * child): its role runs. Answer it with {@linkcode ExpectedChild.settle}.
   */
  ready: Promise<ReadyRequest>;
  /** Answers the ready report: the child's ALIVE record, or why the spawn failed. */
  settle(outcome: ServiceRecord | Error): void;
  /**
   * Discards the password; the child can no longer bootstrap, and a
   * bootstrap or ready report still waiting is refused.
   */
  discard(): void;
}

/** A step of a spawn that may be refused: refused where it is awaited, if anyone still does. */
function refusable<T>(): PromiseWithResolvers<T> {
  const step = Promise.withResolvers<T>();
  step.promise.catch(() => {});
  return step;
}

/** A spawn in progress: what it and its child say to each other, from the password on. */
interface Pending {
  arrived: PromiseWithResolvers<BootstrapArrival>;
  configure: PromiseWithResolvers<ConfigureRequest>;
  ready: PromiseWithResolvers<ReadyRequest>;
  settled: PromiseWithResolvers<ServiceRecord>;
  incarnation: number;
}

/** What {@linkcode KeyHandover} needs. */
export interface KeyHandoverOptions {
  keys: FabricKeys;
  registries: () => RegistryEndpoint[];
  /** This service: the new child's parent. */
  self: RegistryEndpoint;
  /** Passwords, shared so tests can inject a clock. Default a new store. */
  passwords?: OneTimePasswords;
  /** Refused attempts per source address. Default: a burst of 10, then 2 a second. */
  limiter?: RateLimiter;
  /** Lifetime of the certificates issued, seconds. Default {@linkcode CERT_SECONDS}. */
  certSeconds?: number;
}

export { bundleInfo };

/** What a child's certificate will say besides its keys. */
export interface ChildClaims {
  role: string;
  incarnation: number;
  /** The spawn tree from the root down to the child. */
  route: string[];
  /** Data-plane services the child may use. */
  peers: string[];
}

/** Hands the fabric keys to children that prove their one-time password. */
export class KeyHandover {
  #options: KeyHandoverOptions & { certSeconds: number };
  #passwords: OneTimePasswords;
  #limiter: RateLimiter;
  #views = new Map<string, { parentUrl: string; registries: RegistryEndpoint[] }>();
  #claims = new Map<string, ChildClaims>();
  #pending = new Map<string, Pending>();

  /** A hand-over for the children of `options.self`. */
  constructor(options: KeyHandoverOptions) {
    this.#options = { certSeconds: certSecondsFromEnv(), ...options };
    this.#passwords = options.passwords ?? new OneTimePasswords();
    this.#limiter = options.limiter ?? new RateLimiter();
  }

  /** Passwords currently usable (for status and tests). */
  get pending(): number {
    return this.#passwords.usable;
  }

  /** Whether `serviceId` still has a usable password. */
  hasPassword(serviceId: string): boolean {
    return this.#passwords.has(serviceId);
  }

  /**
   * Issues a password for `serviceId` and waits for its child. `view` says how
   * the child reaches this parent and the registries (through port forwards on
   * another host); by default as this host does.
   */
  expect(
    serviceId: string,
    options: {
      ttlMs?: number;
      view?: { parentUrl: string; registries: RegistryEndpoint[] };
      /** What the child's certificate says. Default: a spawner, incarnation 1, below this service. */
      claims?: ChildClaims;
    } = {},
  ): ExpectedChild {
    const password = this.#passwords.issue(
      serviceId,
      options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs },
    );
    if (options.view) this.#views.set(serviceId, options.view);
    this.#claims.set(serviceId, options.claims ?? this.#defaultClaims(serviceId));
    const pending: Pending = {
      arrived: Promise.withResolvers(),
      configure: refusable(),
      ready: refusable(),
      settled: refusable(),
      incarnation: options.claims?.incarnation ?? 1,
    };
    this.#pending.set(serviceId, pending);
    return {
      password,
      arrived: pending.arrived.promise,
      configure: (body) => pending.configure.resolve(body),
      ready: pending.ready.promise,
      settle: (outcome) => {
        if (outcome instanceof Error) pending.settled.reject(outcome);
        else pending.settled.resolve(outcome);
        if (this.#pending.get(serviceId) === pending) this.#pending.delete(serviceId);
      },
      discard: () => {
        this.#passwords.discard(serviceId);
        this.#views.delete(serviceId);
        this.#claims.delete(serviceId);
        const gone = new Error(`The spawn of "${serviceId}" ended before it was ready`);
        for (const step of [pending.configure, pending.ready, pending.settled]) step.reject(gone);
        if (this.#pending.get(serviceId) === pending) this.#pending.delete(serviceId);
      },
    };
  }

  /**
   * Answers a child's `POST /v1/bootstrap` from the address `source`. An
   * unknown handle changes nothing and is answered like a wrong proof; a
   * pending handle is never rate-limited, so a flood from the child's own
   * address cannot starve it.
   * @throws {BootstrapRefusedError} for an unknown handle, a used, expired or
   * burnt password, a wrong proof or an unusable public key.
   * @throws {RateLimitedError} when `source` sent too many refused attempts.
   */
  async answer(request: BootstrapRequest, source = "unknown"): Promise<SealedBundle> {
    if (!this.#passwords.knows(request.handle)) {
      const wait = this.#limiter.take(source);
      if (wait > 0) {
        throw new RateLimitedError(
          `Too many refused bootstrap attempts from ${source}: retry in ${wait} s`,
          wait,
        );
      }
      throw new BootstrapRefusedError(REFUSED_MESSAGE);
    }
    const transcript = bootstrapTranscript({
      serviceId: request.id,
      publicKey: request.publicKey,
      endpoint: request.endpoint,
      signingKey: request.signingKey,
    });
    // Check the key first: a password must not be spent on a bundle that cannot be sealed.
    const problem = await peerKeyProblem(request.publicKey);
    if (problem) {
      throw new BootstrapRefusedError(`Bootstrap of "${request.id}" refused: ${problem}`);
    }
    const outcome = this.#passwords.consume(
      { handle: request.handle, serviceId: request.id, transcript },
      request.proof,
    );
    if (!outcome.ok) {
      if (outcome.reason === "bad-proof") this.#limiter.take(source);
      throw new BootstrapRefusedError(outcome.message);
    }
    const view = this.#views.get(request.id);
    this.#views.delete(request.id);
    const bundle = await this.#bundleFor(request, view);
    // The spawn learns the child's endpoint now and answers with what it is to be.
    const pending = this.#pending.get(request.id);
    if (pending) {
      pending.arrived.resolve({ endpoint: request.endpoint, host: request.host, pid: request.pid });
      bundle.configure = await pending.configure.promise;
    }
    return await sealBundle(new TextEncoder().encode(JSON.stringify(bundle)), {
      peerPublicKey: request.publicKey,
      passwordKey: outcome.passwordKey,
      info: bundleInfo(request.id),
    });
  }

  /**
   * Answers a child's `POST /v1/ready`, signed by `signer`: hands the report
   * to the spawn waiting for it and returns the ALIVE record that spawn wrote.
   * @throws {ConflictError} when no spawn of the signer waits for its report
   * (none, another incarnation, or the report came already), or the spawn
   * failed meanwhile.
   */
  async ready(signer: Signer, report: ReadyRequest): Promise<ServiceRecord> {
    const pending = this.#pending.get(report.id);
    if (
      !pending || signer.kind !== "service" || signer.id !== report.id ||
      signer.incarnation !== report.incarnation || pending.incarnation !== report.incarnation
    ) {
      throw new ConflictError(
        `No spawn of "${report.id}" (incarnation ${report.incarnation}) waits for it to be ready here`,
      );
    }
    this.#pending.delete(report.id);
    pending.ready.resolve(report);
    try {
      return await pending.settled.promise;
    } catch (error) {
      throw new ConflictError(
        `Spawn of "${report.id}" failed: ${error instanceof Error ? error.message : error}`,
      );
    }
  }

  /**
   * The bundle of a proven child: its chain (this service's, then the child's
   * certificate, issued with this service's own key) and the fabric root.
   */
  async #bundleFor(
    request: BootstrapRequest,
    view: { parentUrl: string; registries: RegistryEndpoint[] } | undefined,
  ): Promise<KeyBundle> {
    const { keys, self } = this.#options;
    const claims = this.#claims.get(request.id) ?? this.#defaultClaims(request.id);
    this.#claims.delete(request.id);
    const now = Math.floor(Date.now() / 1000);
    const root = keys.root ?? { publicKey: keys.publicKey, fingerprint: keys.fingerprint };
    const certificate = await issueCertificate(keys.privateKey, {
      sub: request.id,
      role: claims.role,
      inc: claims.incarnation,
      route: claims.route,
      key: request.signingKey,
      x25519: request.publicKey,
      peers: claims.peers,
      iss: keys.identity ? self.id : "root",
      iat: now,
      exp: Math.min(now + this.#options.certSeconds, keys.expires ?? Number.MAX_SAFE_INTEGER),
    });
    return {
      identity: keys.identity ? `${keys.identity},${certificate}` : certificate,
      root: await rawPublicKey(root.publicKey),
      fingerprint: root.fingerprint,
      registries: view?.registries ?? this.#options.registries(),
      parent: view ? { id: self.id, url: view.parentUrl } : self,
    };
  }

  /**
   * A new certificate for a child that already holds one (`signer`, verified
   * and checked to be a current child of this service by the caller): same
   * keys and claims, a new lifetime.
   */
  async renew(signer: ServiceSigner): Promise<{ identity: string; expires: number }> {
    const { keys, self } = this.#options;
    const now = Math.floor(Date.now() / 1000);
    const expires = Math.min(
      now + this.#options.certSeconds,
      keys.expires ?? Number.MAX_SAFE_INTEGER,
    );
    const certificate = await issueCertificate(keys.privateKey, {
      sub: signer.id,
      role: signer.role,
      inc: signer.incarnation,
      route: signer.route,
      key: signer.key,
      x25519: signer.x25519,
      peers: signer.peers,
      iss: keys.identity ? self.id : "root",
      iat: now,
      exp: expires,
    });
    return { identity: keys.identity ? `${keys.identity},${certificate}` : certificate, expires };
  }

  #defaultClaims(serviceId: string): ChildClaims {
    return {
      role: "spawner",
      incarnation: 1,
      route: [this.#options.self.id, serviceId],
      peers: [],
    };
  }
}

/**
 * The lifetime of issued certificates: `FABRIC_CERT_SECONDS` (10 to 86,400;
 * tests shorten it to see renewals), else {@linkcode CERT_SECONDS}.
 */
function certSecondsFromEnv(): number {
  const raw = Deno.env.get("FABRIC_CERT_SECONDS");
  const value = Number(raw);
  return raw && Number.isSafeInteger(value) && value >= 10 && value <= 86_400
    ? value
    : CERT_SECONDS;
}
