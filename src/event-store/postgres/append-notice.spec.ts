import { mayMatch, noticePayload, parseNotice } from './append-notice';

describe('append notices', () => {
  const notice = { streams: ['backup-job-1', 'nbd-ports-host'], types: ['BackupStarted', 'NbdPortLeased'] };

  it('names the distinct streams and types of a group of appends, and reads back what it wrote', () => {
    const payload = noticePayload([
      { streamId: 'backup-job-1', events: [{ type: 'BackupStarted' }] },
      { streamId: 'nbd-ports-host', events: [{ type: 'NbdPortLeased' }, { type: 'NbdPortLeased' }] },
      { streamId: 'backup-job-1', events: [{ type: 'BackupStarted' }] },
    ]);
    expect(parseNotice(payload)).toEqual(notice);
  });

  it('says "everything" when the notice would not fit in a NOTIFY payload, and for payloads that are no notice', () => {
    const many = Array.from({ length: 300 }, (_, i) => ({ streamId: `backup-job-${'x'.repeat(20)}-${i}`, events: [{ type: 'BackupStarted' }] }));
    expect(noticePayload(many)).toBe('*');
    for (const payload of ['*', 'reset backup-jobs', '3', '', undefined, '{not json', '{"s":["a"]}', '{"s":["a"],"t":[1]}']) expect(parseNotice(payload)).toBe('everything');
  });

  it('matches a filter by stream prefix and by event type, both where both are given, and anything without a filter', () => {
    expect(mayMatch(notice, undefined)).toBe(true);
    expect(mayMatch(notice, {})).toBe(true);
    expect(mayMatch(notice, { streamPrefixes: ['backup-'] })).toBe(true);
    expect(mayMatch(notice, { streamPrefixes: ['chain-', 'policy-'] })).toBe(false);
    expect(mayMatch(notice, { eventTypes: ['NbdPortLeased'] })).toBe(true);
    expect(mayMatch(notice, { eventTypes: ['PolicyCreated'] })).toBe(false);
    expect(mayMatch(notice, { eventTypes: ['BackupStarted'], streamPrefixes: ['backup-'] })).toBe(true);
    expect(mayMatch(notice, { eventTypes: ['PolicyCreated'], streamPrefixes: ['backup-'] })).toBe(false);
    expect(mayMatch('everything', { streamPrefixes: ['chain-'] })).toBe(true);
  });
});
