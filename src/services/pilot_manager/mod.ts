/**
 * The pilot manager role (`fabricd --role pilot-manager`): agents submitted
 * through a launcher (`slurm://partition` on a head node), followed through
 * their batch states, resubmitted or reported by policy.
 *
 * @example
 * ```ts
 * import { pilotManagerSettings } from "./src/services/pilot_manager/mod.ts";
 *
 * const settings = pilotManagerSettings({ on: "slurm://compute", policy: "report" });
 * console.log(settings.maxResubmits); // 2
 * ```
 * @module
 */
export { pilotManagerRole, pilotManagerSettings } from "./pilot_manager_role.ts";
export {
  type Pilot,
  type PilotDeps,
  PilotManager,
  type PilotPolicy,
  type PilotRequest,
  PilotRequestError,
  type PilotState,
} from "./pilots.ts";
export { type PilotDefaults, pilotRoutes } from "./routes.ts";
