import { formatBytes, progressLine } from './progress-bar';

describe('CLI progress', () => {
  it('formats sizes with binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3.0 GiB');
  });

  it('draws a bar per disk', () => {
    expect(progressLine({ diskId: 'disk0', bytesDone: 512, bytesPlanned: 1024, rate: 2048, done: false })).toBe('disk0      [###############---------------]  50%  512 B / 1.0 KiB  2.0 KiB/s');
    expect(progressLine({ diskId: 'disk1', bytesDone: 0, bytesPlanned: 0, rate: 0, done: true })).toContain('100%');
  });
});
