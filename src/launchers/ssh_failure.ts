/**
 * What ssh's stderr means for the user: a failed connection turned into a
 * message that says what to do.
 * @module
 */

/** Turns ssh's stderr into a message that says what to do. */
export function explainSshFailure(host: string, stderr: string): string {
  const text = stderr.trim();
  if (/IDENTIFICATION HAS CHANGED|Host key for .* has changed|REVOKED HOST KEY/i.test(text)) {
    return `Host key of ${host} does not match known_hosts: if the host was reinstalled, check its new key and remove the old one with "ssh-keygen -R ${host}"`;
  }
  // Under BatchMode ssh says only this for a host it does not know (with
  // "No ... host key is known" under StrictHostKeyChecking yes).
  if (/Host key verification failed|host key is known for/i.test(text)) {
    return `${host} is not in known_hosts: connect once with "ssh ${host}" to check and accept its key, or add it with ssh-keyscan`;
  }
  if (/Permission denied/i.test(text)) {
    return `${host} refused our ssh login: load a key into ssh-agent or set IdentityFile in ~/.ssh/config (BatchMode: no passwords)`;
  }
  if (/timed out|Connection timed out/i.test(text)) {
    return `Cannot connect to ${host}: connection timed out (ConnectTimeout)`;
  }
  if (/Could not resolve hostname/i.test(text)) {
    return `Cannot resolve ${host}: check the name or add a Host entry to ~/.ssh/config`;
  }
  return `Cannot connect to ${host}: ${text.split("\n").filter(Boolean).pop() ?? "ssh failed"}`;
}
