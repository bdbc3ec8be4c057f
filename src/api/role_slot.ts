/**
 * Where a service's role plugs into its management API. The app is built
 * before the role starts (a child listens before it bootstraps), so the role's
 * routes are added when it has started, and its front middleware (the
 * bridge's relay) is switched in then. Until the role runs, and once it has
 * stopped, its routes answer 503: retry shortly.
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";

/** What a started role adds to the API. */
export interface RoleParts {
  /** Routes mounted under `/v1`. */
  routes?: Hono | undefined;
  /** Middleware run before the body limit and the signature check. */
  front?: MiddlewareHandler | undefined;
}

/** The role's place in one service's app; see the module doc. */
export class RoleSlot {
  #front: MiddlewareHandler | null = null;
  #state: "waiting" | "running" | "stopped" = "waiting";
  #attach: ((routes: Hono) => void) | null = null;

  /** The middleware the app runs first: the role's front, when it has one. */
  readonly front: MiddlewareHandler = (c, next) => this.#front ? this.#front(c, next) : next();

  /** Whether the role has not started yet (an unknown route may be one of its own). */
  get waiting(): boolean {
    return this.#state === "waiting";
  }

  /** Called once by the app: how routes are added to it. */
  bind(attach: (routes: Hono) => void): void {
    this.#attach = attach;
  }

  /**
   * Plugs a started role in.
   * @throws {Error} when a role is already mounted or the slot is not bound to an app.
   */
  mount(parts: RoleParts): void {
    if (this.#state !== "waiting") throw new Error("A role is already mounted in this service");
    if (parts.routes) {
      if (!this.#attach) throw new Error("The role slot is not part of an app");
      const gated = new Hono();
      gated.use((_c, next) => {
        if (this.#state !== "running") {
          throw new HTTPException(503, { message: "The role has stopped: retry elsewhere" });
        }
        return next();
      });
      gated.route("/", parts.routes);
      this.#attach(gated);
    }
    this.#front = parts.front ?? null;
    this.#state = "running";
  }

  /** Takes the role out: its routes answer 503 and its front is bypassed. */
  unmount(): void {
    this.#state = "stopped";
    this.#front = null;
  }
}
