/**
 * The spawner role: a service that only spawns (the common API), the lightest
 * process to keep at each hop.
 * @module
 */
export { spawnerRole } from "./spawner_role.ts";
