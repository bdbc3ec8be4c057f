/**
 * The bridge role: a hop of the spawn tree that relays requests for the
 * services below and above it (`api/relay.ts`).
 * @module
 */
export { bridgeRole } from "./bridge_role.ts";
