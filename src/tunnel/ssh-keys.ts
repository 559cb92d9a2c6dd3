import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { runProcess } from '../process/run-process';

export interface SshKeyPair {
  privateKeyPath: string;
  /** OpenSSH one-line form: `ssh-ed25519 AAAA... comment`, what an operator registers on the hub. */
  publicKey: string;
  /** `SHA256:...`, the same string `ssh-keygen -lf` prints. */
  fingerprint: string;
}

/** SHA-256 fingerprint of a public key in SSH wire format, unpadded base64 as OpenSSH prints it. */
export function sshFingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The type name that opens every SSH wire-format key (`ssh-ed25519`, `ssh-rsa`, ...). */
export function keyTypeOf(keyBlob: Buffer): string {
  const length = keyBlob.readUInt32BE(0);
  return keyBlob.subarray(4, 4 + length).toString('ascii');
}

/** The wire-format blob inside an OpenSSH public key line (`type base64 [comment]`). */
export function publicKeyBlob(openSshLine: string): Buffer {
  const base64 = openSshLine.trim().split(/\s+/)[1];
  if (!base64) throw new Error('not an OpenSSH public key line');
  return Buffer.from(base64, 'base64');
}

/** The agent's identity: created once, then reused so its registration on the hub stays valid. */
export async function generateAgentKey(dir: string): Promise<SshKeyPair> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return ensureEd25519Key(join(dir, 'id_ed25519'), 'sendense-agent');
}

/** The hub's host key: agents pin its fingerprint, so it must survive restarts. */
export async function ensureHostKey(file: string): Promise<SshKeyPair> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  return ensureEd25519Key(file, 'sendense-hub');
}

async function ensureEd25519Key(privateKeyPath: string, comment: string): Promise<SshKeyPair> {
  if (!(await exists(privateKeyPath))) {
    // stdin ignored: if the file appeared meanwhile, ssh-keygen's "Overwrite?" prompt gets EOF and says no.
    await runProcess('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', privateKeyPath], { timeoutMs: 10_000 });
  }
  await chmod(privateKeyPath, 0o600);
  const publicPath = `${privateKeyPath}.pub`;
  let publicKey: string;
  if (await exists(publicPath)) {
    publicKey = (await readFile(publicPath, 'utf8')).trim();
  } else {
    // A lost .pub is recoverable from the private key; the identity must not change.
    const [type, base64] = (await runProcess('ssh-keygen', ['-y', '-f', privateKeyPath], { timeoutMs: 10_000 })).stdout.trim().split(/\s+/);
    publicKey = `${type} ${base64} ${comment}`;
    await writeFile(publicPath, `${publicKey}\n`, { mode: 0o644 });
  }
  return { privateKeyPath, publicKey, fingerprint: sshFingerprint(publicKeyBlob(publicKey)) };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
