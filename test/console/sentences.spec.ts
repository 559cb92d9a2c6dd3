import { SAID_TYPES, sentence, sentenceOrPlain, type StoryEvent } from '../../console/src/audit/sentences';

const event = (type: string, data: Record<string, unknown>, actor = 'admin'): StoryEvent => ({ eventId: 'e1', streamId: 's-1', type, position: '1', time: '2026-11-29T13:00:00.000Z', data, metadata: { actor, correlationId: 'c1' } });

/** The audit page's sentences for the remote and sync events, which it showed as raw events before. */
describe('audit sentences: remotes and sync runs in an operator\'s words', () => {
  it('says who registered a remote and where, who replaced its token, and who created a sync job for what', () => {
    expect(sentence(event('RemoteRegistered', { remoteId: 'r1', name: 'offsite', url: 'ssh://10.0.0.9:2222', fingerprint: 'SHA256:abc' }))).toEqual({ text: 'operator admin registered remote hub offsite at ssh://10.0.0.9:2222, its host key SHA256:abc' });
    expect(sentence(event('RemoteTokenReplaced', { remoteId: 'r1', tokenSha256: 'ff' }))).toEqual({ text: 'operator admin replaced the sync token of remote r1' });
    expect(sentence(event('SyncJobCreated', { remoteId: 'r1', vms: ['vm1', 'vm2'], schedule: '0 3 * * *' }))).toEqual({ text: 'operator admin created a sync job from remote r1 for 2 VMs, on schedule 0 3 * * *' });
    expect(sentence(event('SyncJobCreated', { remoteId: 'r1', vms: null, schedule: null }))).toEqual({ text: 'operator admin created a sync job from remote r1 for every VM' });
  });

  it('tells a run started by a schedule from one an operator started, a refused point as bad news, and a takeover', () => {
    expect(sentence(event('SyncRunStarted', { trigger: 'schedule' }, 'system'))).toEqual({ text: 'a scheduled sync run started' });
    expect(sentence(event('SyncRunStarted', { trigger: 'manual' }))).toEqual({ text: 'operator admin started a sync run' });
    expect(sentence(event('SyncPointRefused', { restorePointId: 'rp-1', vmId: 'vm1', reason: 'its parent is neither held here nor listed' }, 'system'))).toEqual({ text: 'restore point rp-1 of vm1 listed by the remote hub was not taken: its parent is neither held here nor listed', tone: 'bad' });
    expect(sentence(event('SyncRunAdopted', { from: '/var/lib/sendense-a', hubInstance: '/var/lib/sendense-b' }, 'system'))).toEqual({ text: 'the hub took over a sync run left by hub process /var/lib/sendense-a, which is gone' });
  });

  it('says when a hub took over a restore point delete another process left', () => {
    expect(sentence(event('RestorePointDeleteAdopted', { restorePointId: 'rp-1', hubInstance: 'hub-b', from: 'hub-a' }, 'system'))).toEqual({ text: 'the hub took over the delete of restore point rp-1 left by hub process hub-a, which is gone' });
  });

  it('offers them among the types the page says in words; a type it does not know stays a plain sentence', () => {
    expect(SAID_TYPES).toEqual(expect.arrayContaining(['RemoteRegistered', 'RemoteTokenReplaced', 'SyncJobCreated', 'SyncRunStarted', 'SyncPointRefused', 'SyncRunAdopted']));
    expect(sentence(event('toString', {}))).toBeNull();
    expect(sentenceOrPlain(event('PortLeased', {}, 'system'))).toEqual({ text: 'the hub recorded PortLeased on s-1' });
  });
});
