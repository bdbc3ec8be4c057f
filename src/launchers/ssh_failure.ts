/**
 * What ssh's failures mean for the user: a failed connection turned into a
 * message that says what to do, and whether the host was reachable at all.
 * @module
 */

/** A failure of ssh itself (not of the remote command), with advice. */
export class SshError extends Error {
  /**
   * The host could not be reached at all (name, route, port, time): a spawn
   * failing so exits 69. False for a refused login or host key.
   */
  readonly unreachable: boolean;
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions & { unreachable?: boolean }) {
    super(message, options);
    this.name = "SshError";
    this.unreachable = options?.unreachable ?? false;
  }
}

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

/**
 * Whether ssh's stderr says that the host could not be reached at all: its
 * name does not resolve, no route, the network is down, nothing listens on
 * the port, or the connection timed out. A spawn that fails so exits 69
 * (unreachable); a refused login or host key is the operator's to fix and
 * exits 1 with what to do.
 */
export function sshUnreachable(stderr: string): boolean {
  return /Could not resolve hostname|Name or service not known|No address associated|No route to host|Network is unreachable|Connection refused|timed out/i
    .test(stderr);
}
