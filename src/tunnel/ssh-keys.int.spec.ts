import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureHostKey, generateAgentKey } from './ssh-keys';

describe('SSH keys', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'sendense-keys-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates an ed25519 agent key once and reports the fingerprint ssh-keygen prints', async () => {
    const key = await generateAgentKey(join(dir, 'agent'));
    expect(key.privateKeyPath).toBe(join(dir, 'agent', 'id_ed25519'));
    expect(key.publicKey).toMatch(/^ssh-ed25519 AAAA\S+ sendense-agent$/);
    const printed = execFileSync('ssh-keygen', ['-lf', key.privateKeyPath], { encoding: 'utf8' }).split(' ')[1];
    expect(key.fingerprint).toBe(printed);
    expect(statSync(key.privateKeyPath).mode & 0o777).toBe(0o600);
    expect(await generateAgentKey(join(dir, 'agent'))).toEqual(key);
  });

  it('rebuilds a lost public key from the private key without changing the identity', async () => {
    const key = await generateAgentKey(dir);
    unlinkSync(`${key.privateKeyPath}.pub`);
    expect(await generateAgentKey(dir)).toEqual(key);
  });

  it('creates the hub host key 0600 and keeps it across calls', async () => {
    const file = join(dir, 'hub', 'ssh_host_ed25519_key');
    const first = await ensureHostKey(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(first.publicKey).toMatch(/^ssh-ed25519 /);
    expect((await ensureHostKey(file)).fingerprint).toBe(first.fingerprint);
  });
});
