import { parseRestoreReport } from './restore-report.parse';

describe("an agent's restore report", () => {
  it('passes well-formed reports through, field by field', () => {
    const reports = [
      { type: 'restore-started', disks: [{ diskId: 'vda', path: '/var/lib/libvirt/images/web-vda.qcow2' }] },
      { type: 'disk-progressed', diskId: 'vda', bytesDone: 1, bytesPlanned: 2, rate: 3 },
      { type: 'disk-completed', diskId: 'vda', bytesWritten: 1, bytesZeroed: 0, bytesPlanned: 1, durationMs: 4, verifiedBlocks: 1 },
      { type: 'domain-defined', name: 'web', uuid: '0b9bd5a4-61c9-4a55-9d5c-2f0c4e7b3a11' },
      { type: 'instant-running', name: 'web', uuid: '0b9bd5a4-61c9-4a55-9d5c-2f0c4e7b3a11' },
      { type: 'copy-stalled', reason: 'the copy of vda stopped: no space left on the filesystem of /x (0 bytes free)' },
      { type: 'copy-stalled', reason: null },
      { type: 'drill-finished', passed: true, bootMs: 4100, reason: null, screenshot: { contentType: 'text/plain', data: 'R1VFU1QgUkVBRFk=' } },
      { type: 'finished', domain: { name: 'web', uuid: '0b9bd5a4-61c9-4a55-9d5c-2f0c4e7b3a11', started: false } },
      { type: 'failed', reason: 'no space', damaged: [{ diskId: 'vdb', offset: 0, length: 65536, expected: 'a'.repeat(64), actual: 'b'.repeat(64) }] },
    ];
    for (const r of reports) expect(parseRestoreReport(r)).toEqual(r);
    // a restore's error is shown to operators: what would drive their terminal is not kept
    expect(parseRestoreReport({ type: 'failed', reason: 'no space\u001b[2J\r', damaged: [] })).toEqual({ type: 'failed', reason: 'no space?[2J?', damaged: [] });
  });

  it.each([
    [{ type: 'nope' }, /type must be one of/],
    [{ type: 'restore-started', disks: [{ diskId: '../x', path: '/a' }] }, /diskId/],
    [{ type: 'disk-progressed', diskId: 'vda', bytesDone: -1, bytesPlanned: 2, rate: 3 }, /bytesDone/],
    [{ type: 'domain-defined', name: 'web', uuid: 'not-a-uuid' }, /uuid must be a uuid/],
    [{ type: 'finished', domain: { name: 'web', uuid: '0b9bd5a4-61c9-4a55-9d5c-2f0c4e7b3a11' } }, /domain.started/],
    [{ type: 'failed', reason: '', damaged: [] }, /reason must be a string/],
    [{ type: 'copy-stalled' }, /reason must be a string/],
    [{ type: 'copy-stalled', reason: 'x'.repeat(4001) }, /reason must be a string of 1-4000/],
    [{ type: 'failed', reason: 'x', damaged: [{ diskId: 'vda', offset: 0, length: 1, expected: 'zz', actual: 'b'.repeat(64) }] }, /expected must be 64 hex digits/],
  ])('refuses %j', (body, message) => {
    expect(() => parseRestoreReport(body as Record<string, unknown>)).toThrow(message);
  });
});
