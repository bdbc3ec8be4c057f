/**
 * `fabricd revoke ID`: cuts a service off at once. Its record goes to LOST,
 * which revokes the identity of its incarnation: every service refuses it
 * from its next heartbeat on (docs/protocol.md 2.11, docs/security.md).
 * @module
 */
import { FabricRequestError } from "../client/fabric_client.ts";
import { EXIT } from "../types/mod.ts";
import { checkId, parseFlags, stringFlag } from "./args.ts";
import { unknownService, usage } from "./cli_error.ts";
import { loadContext } from "./context.ts";

/** Help text of `fabricd revoke`. */
export const REVOKE_HELP = `fabricd revoke ID [--reason TEXT] [--json] [--fabric FILE]

Cuts service ID off at once, as when its host is compromised: its record
becomes LOST and its certificate is refused everywhere from the next
heartbeat on (about 2 s). Its parent does not renew it, and the role's
replacement policy applies as for any lost service.

  --reason TEXT   why, 1-500 characters, kept in its transition (default
                  "revoked by the operator")

Exit codes: 0 revoked, 1 no such service, 64 usage (a malformed ID or
reason: nothing is sent), 69 the fabric is not running, 78 no fabric file.
`;

/** Most characters of a revocation's reason (the registry's limit). */
const MAX_REASON = 500;

/** Runs `fabricd revoke`. */
export async function revokeCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("revoke", args, {
    reason: { type: "string" },
    json: { type: "boolean" },
    fabric: { type: "string" },
  });
  if (parsed.flags.help) {
    console.log(REVOKE_HELP);
    return EXIT.OK;
  }
  const [id, ...extra] = parsed.positionals;
  if (!id || extra.length > 0) throw usage('Give one service ID: "fabricd revoke spw-1a2b3c4d"');
  checkId("service", id);
  const reason = stringFlag(parsed, "reason") ?? "revoked by the operator";
  if (reason.trim() === "" || reason.length > MAX_REASON) {
    throw usage(
      `Invalid --reason "${reason}": say why in 1-${MAX_REASON} characters, ` +
        `e.g. --reason "host compromised"`,
    );
  }
  const context = await loadContext(stringFlag(parsed, "fabric"));
  try {
    const record = await context.registry.revoke(id, reason);
    if (parsed.flags.json) console.log(JSON.stringify({ record }));
    else console.log(`Revoked ${id} (incarnation ${record.incarnation}, now ${record.state})`);
    return EXIT.OK;
  } catch (error) {
    if (error instanceof FabricRequestError && error.status === 404) {
      throw unknownService(id);
    }
    throw error;
  }
}
