import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePublicKey } from './public-key';

describe('agent public keys', () => {
  it('parses an OpenSSH ed25519 key and computes the same fingerprint as ssh-keygen', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sendense-key-'));
    try {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'agent@host', '-f', join(dir, 'k')]);
      const text = readFileSync(join(dir, 'k.pub'), 'utf8');
      const expected = execFileSync('ssh-keygen', ['-lf', join(dir, 'k.pub')], { encoding: 'utf8' }).split(' ')[1];
      expect(parsePublicKey(text)).toEqual({ type: 'ssh-ed25519', normalized: text.trim().split(' ').slice(0, 2).join(' '), fingerprint: expected });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(['', 'ssh-ed25519', 'ssh-dss AAAAB3NzaC1kc3M=', 'ssh-ed25519 not-base64!', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==\nssh-ed25519 x', '-----BEGIN OPENSSH PRIVATE KEY-----'])('refuses %j', (text) => {
    expect(parsePublicKey(text)).toBeNull();
  });
});
