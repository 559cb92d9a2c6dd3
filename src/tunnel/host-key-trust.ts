import { appendFileSync, readFileSync } from 'node:fs';
import { keyTypeOf, sshFingerprint } from './ssh-keys';
import { TunnelLogger } from './tunnel-logger';

export type HostKeyVerdict = { ok: true } | { ok: false; reason: string };

/** The pinned-fingerprint rule on its own, for clients that never trust on first use (and so keep no known-hosts file). */
export function checkPinnedHostKey(keyBlob: Buffer, pinnedFingerprint: string): HostKeyVerdict {
  const fingerprint = sshFingerprint(keyBlob);
  const pinned = pinnedFingerprint.startsWith('SHA256:') ? pinnedFingerprint : `SHA256:${pinnedFingerprint}`;
  return fingerprint === pinned ? { ok: true } : { ok: false, reason: `hub host key ${fingerprint} does not match the pinned ${pinned}` };
}

/**
 * Decides whether the hub's host key is the right one. With a pinned fingerprint only that key
 * passes; without one, the first key seen for host:port is recorded in a known-hosts file
 * (OpenSSH's `[host]:port type base64` line format) and every later connection must match it.
 */
export class HostKeyTrust {
  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly knownHostsFile: string,
    private readonly pinnedFingerprint: string | undefined,
    private readonly log: TunnelLogger,
  ) {}

  /** Synchronous because ssh2 calls it mid-handshake. */
  check(keyBlob: Buffer): HostKeyVerdict {
    if (this.pinnedFingerprint) return checkPinnedHostKey(keyBlob, this.pinnedFingerprint);
    const fingerprint = sshFingerprint(keyBlob);
    const hostSpec = `[${this.host}]:${this.port}`;
    const known = this.knownKey(hostSpec);
    if (!known) {
      appendFileSync(this.knownHostsFile, `${hostSpec} ${keyTypeOf(keyBlob)} ${keyBlob.toString('base64')}\n`, { mode: 0o600 });
      this.log.info({ hub: hostSpec, fingerprint, knownHostsFile: this.knownHostsFile }, 'hub host key trusted on first use');
      return { ok: true };
    }
    return known.equals(keyBlob)
      ? { ok: true }
      : { ok: false, reason: `hub host key ${fingerprint} differs from the one recorded in ${this.knownHostsFile} (${sshFingerprint(known)})` };
  }

  private knownKey(hostSpec: string): Buffer | undefined {
    let text: string;
    try {
      text = readFileSync(this.knownHostsFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    for (const line of text.split('\n')) {
      const [spec, , base64] = line.trim().split(/\s+/);
      if (spec === hostSpec && base64) return Buffer.from(base64, 'base64');
    }
    return undefined;
  }
}
