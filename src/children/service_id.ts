/**
 * Service IDs: a short role prefix and 8 random hex digits, e.g. `spw-3f9a0c12`.
 * @module
 */
import type { Role } from "../types/mod.ts";

const PREFIX: Record<Role, string> = {
  registry: "reg",
  spawner: "spw",
  bridge: "brg",
  agent: "agt",
  queue: "que",
  pubsub: "pub",
  "pilot-manager": "plm",
};

/** A fresh service ID for `role`. */
export function newServiceId(role: Role): string {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return `${PREFIX[role]}-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}
