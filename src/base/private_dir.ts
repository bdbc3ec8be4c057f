/**
 * Whether a state directory is the user's own: fabricd keeps its key, its
 * registry and its sockets there, so on a host shared with strangers a
 * directory another user owns, or may write to, would let that user delete,
 * swap or link those files (the check OpenSSH makes of `~/.ssh`).
 * @module
 */

/**
 * Why `path`, a directory, is not private to this user: owned by another
 * user, or writable by the group or others; null when it is (or on a system
 * without Unix owners). A path that is not there is not looked at (null).
 */
export async function notPrivateDirectory(path: string): Promise<string | null> {
  const info = await Deno.stat(path).catch(() => null);
  if (!info || info.uid === null || info.mode === null) return null;
  const uid = Deno.uid();
  if (uid !== null && info.uid !== uid) {
    return `"${path}" belongs to another user (uid ${info.uid}): use a directory of your own`;
  }
  if ((info.mode & 0o022) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(3, "0");
    return `"${path}" may be written by others (mode ${mode}): run "chmod 700 ${path}", ` +
      "or use a directory of your own";
  }
  return null;
}
