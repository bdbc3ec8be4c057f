/**
 * The sealed bundle a parent answers a proven bootstrap with (docs/protocol.md
 * 4.5), shared by both sides: what it holds, and the info string that binds
 * its sealing to one service. It holds the child's certificate chain and the
 * fabric root's public key, never a private key: the child made its own.
 * @module
 */
import * as z from "zod";
import { configureRequestSchema, serviceIdSchema } from "../types/wire.ts";

const registryEndpoint = z.strictObject({ id: serviceIdSchema, url: z.url() });

/** What the sealed bundle holds once opened. */
export const keyBundleSchema = z.strictObject({
  /** The child's chain, root's certificate first (`Fabric-Identity`). */
  identity: z.string().min(1).max(32_768),
  /** The fabric root's Ed25519 public key, raw, base64url. */
  root: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  /** The root's fingerprint: the child's pin must equal it. */
  fingerprint: z.string(),
  registries: z.array(registryEndpoint).max(16),
  parent: registryEndpoint,
  /**
   * What the child is to be (the body of `POST /v1/configure`): it starts its
   * role and reports ready (`POST /v1/ready`) instead of waiting for the call.
   */
  configure: configureRequestSchema.optional(),
});
/** The opened key bundle. */
export type KeyBundle = z.infer<typeof keyBundleSchema>;

/** The info string binding a sealed bundle to one service. */
export function bundleInfo(serviceId: string): string {
  return `fabricd-bundle-v2\n${serviceId}`;
}
