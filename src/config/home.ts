/**
 * The user's home directory, kept apart from the fabric file so that a service
 * process, which never reads YAML, does not load the YAML parser.
 * @module
 */

/** The user's home directory, from `HOME` (or `USERPROFILE`). */
export function homeDir(env: { get(name: string): string | undefined } = Deno.env): string {
  return env.get("HOME") ?? env.get("USERPROFILE") ?? "/";
}
