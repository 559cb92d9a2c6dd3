import { createHash } from 'node:crypto';
import { utils } from 'ssh2';

export interface ParsedPublicKey {
  type: string;
  /** OpenSSH form without the comment. */
  normalized: string;
  /** SHA256:base64 as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

const ACCEPTED = new Set(['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa']);

/** Returns null for anything that is not a single well-formed OpenSSH public key of an accepted type. */
export function parsePublicKey(text: string): ParsedPublicKey | null {
  const line = text.trim();
  if (line.includes('\n') || line.length > 8192) return null;
  const [type, blob] = line.split(/\s+/);
  if (!ACCEPTED.has(type) || !blob) return null;
  const parsed = utils.parseKey(`${type} ${blob}`);
  if (parsed instanceof Error || Array.isArray(parsed) || parsed.type !== type) return null;
  const raw = Buffer.from(blob, 'base64');
  return { type, normalized: `${type} ${blob}`, fingerprint: `SHA256:${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}` };
}
