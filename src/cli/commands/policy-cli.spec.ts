import { PassThrough } from 'node:stream';
import type { HubApi } from '../hub-api';
import { POLICY_COMMANDS } from './policy-cli';

/** `sendense policy run`, its hub faked: what it prints and what its exit code tells a script. */
describe('policy run', () => {
  const ran = async (jobs: { vmId: string; jobId: string; status: string; reason: string | null }[]) => {
    const out = new PassThrough();
    let printed = '';
    out.on('data', (chunk) => (printed += chunk));
    const api = () => ({ call: async () => ({ slot: 'manual', jobs }) }) as unknown as HubApi;
    const code = await POLICY_COMMANDS.run({ args: ['p1'], id: 'p1', out, api, usage: () => 2 });
    return { code, printed };
  };
  const requested = { vmId: 'vm1', jobId: '6b3c5a52-1f4e-4f55-9a77-0d8e52c1a0b1', status: 'requested', reason: null };
  const skipped = { vmId: 'vm2', jobId: '', status: 'skipped', reason: 'vm2 already has a backup job running' };

  it('exits 0 when a backup was started, naming each VM skipped', async () => {
    expect(await ran([requested, skipped])).toEqual({ code: 0, printed: `vm1  backup job ${requested.jobId}\nvm2  skipped: vm2 already has a backup job running\n` });
  });

  it('exits 1 when every VM it selects was skipped: nothing was backed up', async () => {
    expect(await ran([skipped])).toEqual({ code: 1, printed: 'vm2  skipped: vm2 already has a backup job running\n' });
  });
});
