/**
 * Service certificates (docs/protocol.md 2.11): every service signs with its
 * own Ed25519 key, and proves who it is with a chain of certificates from the
 * fabric's root key (the operator's key file) down to itself. Each link is
 * issued by the service's parent, for a child of its own only, so a spawner
 * can certify nothing outside its subtree.
 *
 * A certificate is `fc1.` + base64url(payload JSON) + `.` + base64url(Ed25519
 * signature over the ASCII text `fabricd-cert-v1.` + the payload part). A
 * chain is the certificates from the root's down, joined by `,`, sent in the
 * `Fabric-Identity` header of every request and answer the service signs.
 * @module
 */
import { fromBase64Url, toBase64Url, utf8 } from "./_bytes.ts";
import { fingerprintOf } from "./keys.ts";

/** Who signed a verified message: the operator (the root key) or a service. */
export type Signer =
  | { kind: "operator" }
  | {
    kind: "service";
    id: string;
    role: string;
    incarnation: number;
    /** Service IDs from the root of the spawn tree down to this service. */
    route: string[];
    /** Data-plane services it may use (an agent's queue and pub/sub). */
    peers: string[];
    /** Its X25519 public key, base64url. */
    x25519: string;
    /** Its Ed25519 public key, base64url (what a renewed certificate names again). */
    key: string;
    /** When the chain stops being valid, seconds since the epoch. */
    expires: number;
  };

/** What one certificate says. */
export interface CertificateClaims {
  /** The service's ID. */
  sub: string;
  role: string;
  /** The incarnation certified: a restart gets a new certificate. */
  inc: number;
  /** The spawn tree from the root down to `sub`, which is last. */
  route: string[];
  /** The service's Ed25519 public key, raw, base64url (43 characters). */
  key: string;
  /** The service's X25519 public key, raw, base64url (43 characters). */
  x25519: string;
  /** Data-plane services the holder may use. */
  peers: string[];
  /** The issuer: `"root"` for the operator's key, else the parent's ID. */
  iss: string;
  /** Issued at, seconds since the epoch. */
  iat: number;
  /** Expires at, seconds since the epoch. */
  exp: number;
}

/** The header that carries a signer's chain. */
export const IDENTITY_HEADER = "fabric-identity";
/** Longest certificate lifetime accepted, seconds (one day). */
export const MAX_CERT_SECONDS = 86_400;
/** Default certificate lifetime, seconds (one hour). */
export const CERT_SECONDS = 3600;
/** Longest chain accepted (certificates). */
export const MAX_CHAIN = 16;
const PREFIX = "fc1.";
const SIGNED_TEXT = "fabricd-cert-v1.";
const ID = /^[a-z][a-z0-9-]{1,62}$/;
const KEY = /^[A-Za-z0-9_-]{43}$/;

/**
 * Issues a certificate signed with `issuerKey`.
 * @throws {TypeError} when the claims are malformed.
 */
export async function issueCertificate(
  issuerKey: CryptoKey,
  claims: CertificateClaims,
): Promise<string> {
  const problem = claimsProblem(claims);
  if (problem) throw new TypeError(`Cannot issue a certificate: ${problem}`);
  const payload = toBase64Url(utf8(JSON.stringify(claims)));
  const signature = new Uint8Array(
    await crypto.subtle.sign("Ed25519", issuerKey, utf8(SIGNED_TEXT + payload)),
  );
  return `${PREFIX}${payload}.${toBase64Url(signature)}`;
}

/** A certificate taken apart: its claims, and what its issuer signed. */
interface ParsedCertificate {
  claims: CertificateClaims;
  signed: Uint8Array<ArrayBuffer>;
  signature: Uint8Array<ArrayBuffer>;
}

/** Parses one certificate; a reason string when it is malformed. */
export function parseCertificate(token: string): ParsedCertificate | string {
  if (!token.startsWith(PREFIX)) return `a certificate starts with "${PREFIX}"`;
  const [payload, signature, ...rest] = token.slice(PREFIX.length).split(".");
  if (!payload || !signature || rest.length > 0) return "a certificate has two parts after fc1.";
  const bytes = fromBase64Url(payload);
  const sig = fromBase64Url(signature);
  if (!bytes || !sig || sig.length !== 64) return "a certificate part is not base64url";
  let claims: unknown;
  try {
    claims = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return "a certificate's payload is not JSON";
  }
  const problem = claimsProblem(claims);
  if (problem) return problem;
  return {
    claims: claims as CertificateClaims,
    signed: utf8(SIGNED_TEXT + payload),
    signature: sig,
  };
}

function claimsProblem(claims: unknown): string | null {
  if (typeof claims !== "object" || claims === null || Array.isArray(claims)) {
    return "claims must be an object";
  }
  const c = claims as Record<string, unknown>;
  const names = ["sub", "role", "inc", "route", "key", "x25519", "peers", "iss", "iat", "exp"];
  const extra = Object.keys(c).find((k) => !names.includes(k));
  if (extra) return `unknown claim "${extra}"`;
  if (typeof c.sub !== "string" || !ID.test(c.sub)) return "sub must be a service ID";
  if (typeof c.role !== "string" || !/^[a-z-]{1,32}$/.test(c.role)) return "role must be a role";
  if (!Number.isSafeInteger(c.inc) || (c.inc as number) < 1) return "inc must be 1 or more";
  const route = c.route;
  if (
    !Array.isArray(route) || route.length < 1 || route.length > 64 ||
    route.some((r) => typeof r !== "string" || !ID.test(r)) || route.at(-1) !== c.sub ||
    new Set(route).size !== route.length
  ) return "route must be distinct service IDs ending with sub";
  if (typeof c.key !== "string" || !KEY.test(c.key)) return "key must be 43 base64url characters";
  if (typeof c.x25519 !== "string" || !KEY.test(c.x25519)) {
    return "x25519 must be 43 base64url characters";
  }
  const peers = c.peers;
  if (
    !Array.isArray(peers) || peers.length > 16 ||
    peers.some((p) => typeof p !== "string" || !ID.test(p))
  ) {
    return "peers must be at most 16 service IDs";
  }
  if (typeof c.iss !== "string" || (c.iss !== "root" && !ID.test(c.iss))) {
    return 'iss must be "root" or a service ID';
  }
  if (!Number.isSafeInteger(c.iat) || !Number.isSafeInteger(c.exp)) {
    return "iat and exp must be whole seconds";
  }
  const life = (c.exp as number) - (c.iat as number);
  if (life <= 0 || life > MAX_CERT_SECONDS) {
    return `a certificate must live 1 to ${MAX_CERT_SECONDS} s`;
  }
  return null;
}

/** The root a chain must start from. */
export interface TrustRoot {
  publicKey: CryptoKey;
  fingerprint: string;
}

/** A verified chain: the signer at its end, the leaf's key and fingerprint. */
export interface VerifiedChain {
  signer: Extract<Signer, { kind: "service" }>;
  publicKey: CryptoKey;
  fingerprint: string;
  /** Every certified service of the chain, root side first: each must not be revoked. */
  links: { id: string; incarnation: number }[];
  /** The fingerprint of the root the chain starts from (one of those trusted). */
  root: string;
}

/**
 * Verifies a chain against the root (or any of `roots`, during a root
 * rotation) at time `nowSeconds` (with `skewSeconds` of clock difference):
 * every link is signed by the one above it (the first by a root), names the
 * one above it as issuer, extends its route by one child, and is within its
 * lifetime.
 * @returns The chain's signer, or a reason.
 */
export async function verifyChain(
  roots: TrustRoot | readonly TrustRoot[],
  chain: string,
  nowSeconds: number,
  skewSeconds = 5,
): Promise<VerifiedChain | string> {
  const tokens = chain.split(",");
  if (tokens.length > MAX_CHAIN) return `a chain has at most ${MAX_CHAIN} certificates`;
  const candidates = Array.isArray(roots) ? roots : [roots as TrustRoot];
  let root = candidates[0]!;
  let issuerKey = root.publicKey;
  let issuer: CertificateClaims | null = null;
  let expires = Number.POSITIVE_INFINITY;
  let leafKey: CryptoKey = root.publicKey;
  let leafRaw: Uint8Array<ArrayBuffer> | undefined;
  const links: { id: string; incarnation: number }[] = [];
  for (const token of tokens) {
    const parsed = parseCertificate(token.trim());
    if (typeof parsed === "string") return `malformed certificate: ${parsed}`;
    const { claims } = parsed;
    if (issuer === null) {
      root = await signingRoot(candidates, parsed) ?? root;
      issuerKey = root.publicKey;
    }
    if (!await crypto.subtle.verify("Ed25519", issuerKey, parsed.signature, parsed.signed)) {
      return `certificate of "${claims.sub}" is not signed by ${
        issuer ? `"${issuer.sub}"` : "the fabric root"
      }`;
    }
    if (issuer === null ? claims.iss !== "root" : claims.iss !== issuer.sub) {
      return `certificate of "${claims.sub}" names issuer "${claims.iss}" out of order`;
    }
    if (issuer && !isChildRoute(issuer.route, claims.route)) {
      return `"${issuer.sub}" may certify only its own children, not "${claims.sub}"`;
    }
    if (claims.iat > nowSeconds + skewSeconds) {
      return `certificate of "${claims.sub}" is not valid yet`;
    }
    if (claims.exp + skewSeconds < nowSeconds) return `certificate of "${claims.sub}" expired`;
    expires = Math.min(expires, claims.exp);
    leafRaw = fromBase64Url(claims.key);
    if (!leafRaw || leafRaw.length !== 32) {
      return `certificate of "${claims.sub}" has no usable key`;
    }
    try {
      leafKey = await crypto.subtle.importKey("raw", leafRaw, "Ed25519", true, ["verify"]);
    } catch {
      return `certificate of "${claims.sub}" has no usable key`;
    }
    links.push({ id: claims.sub, incarnation: claims.inc });
    issuerKey = leafKey;
    issuer = claims;
  }
  if (!issuer || !leafRaw) return "an empty chain";
  return {
    signer: {
      kind: "service",
      id: issuer.sub,
      role: issuer.role,
      incarnation: issuer.inc,
      route: issuer.route,
      peers: issuer.peers,
      x25519: issuer.x25519,
      key: issuer.key,
      expires,
    },
    publicKey: leafKey,
    fingerprint: await fingerprintOf(leafRaw),
    links,
    root: root.fingerprint,
  };
}

/** The root among `roots` that signed the first certificate of a chain, or null. */
async function signingRoot(
  roots: readonly TrustRoot[],
  first: ParsedCertificate,
): Promise<TrustRoot | null> {
  if (roots.length === 1) return roots[0]!;
  for (const root of roots) {
    if (await crypto.subtle.verify("Ed25519", root.publicKey, first.signature, first.signed)) {
      return root;
    }
  }
  return null;
}

/**
 * The root among `roots` whose key signed the first certificate of `chain`,
 * or null (a malformed chain, or another root). Tells a chain of a retired
 * root apart from a forged one.
 */
export async function chainRootOf(
  roots: readonly TrustRoot[],
  chain: string,
): Promise<TrustRoot | null> {
  const first = parseCertificate((chain.split(",")[0] ?? "").trim());
  if (typeof first === "string" || roots.length === 0) return null;
  const root = await signingRoot(roots, first);
  if (!root || roots.length > 1) return root;
  return await crypto.subtle.verify("Ed25519", root.publicKey, first.signature, first.signed)
    ? root
    : null;
}

/** Whether route `child` is route `parent` plus one more service. */
export function isChildRoute(parent: readonly string[], child: readonly string[]): boolean {
  return child.length === parent.length + 1 && parent.every((id, i) => child[i] === id);
}

/**
 * Whether `signer` is the service at the end of `route` or one of its
 * ancestors (operator: always): the signer's own route, as certified, must be
 * a prefix of `route`. Comparing routes, not IDs, keeps a certificate that
 * names a borrowed ID elsewhere in the tree from governing anything.
 */
export function governs(signer: Signer, route: readonly string[]): boolean {
  if (signer.kind === "operator") return true;
  return signer.route.length <= route.length && signer.route.every((id, i) => route[i] === id);
}

/** The raw bytes of an Ed25519 or X25519 public key, base64url (43 characters). */
export async function rawPublicKey(key: CryptoKey): Promise<string> {
  return toBase64Url(new Uint8Array(await crypto.subtle.exportKey("raw", key)));
}

/**
 * Imports a raw Ed25519 public key given in base64url, with its fingerprint.
 * @throws {TypeError} when it is not 32 bytes of base64url.
 */
export async function importPublicKey(
  base64url: string,
): Promise<{ publicKey: CryptoKey; fingerprint: string }> {
  const raw = fromBase64Url(base64url);
  if (!raw || raw.length !== 32) throw new TypeError("A public key must be 32 bytes of base64url");
  const publicKey = await crypto.subtle.importKey("raw", raw, "Ed25519", true, ["verify"]);
  return { publicKey, fingerprint: await fingerprintOf(raw) };
}

/**
 * The label of the holder of `keys` in a MAC session's key derivation:
 * `operator` for the root key, else `ID#INCARNATION` of its certificate.
 */
export function signerLabelOf(keys: { identity?: string | undefined }): string {
  if (!keys.identity) return "operator";
  const leaf = parseCertificate(keys.identity.split(",").at(-1)!.trim());
  if (typeof leaf === "string") throw new TypeError(`Own certificate: ${leaf}`);
  return `${leaf.claims.sub}#${leaf.claims.inc}`;
}
