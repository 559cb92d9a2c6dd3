import { storageDirProblem } from './storage-dir';

describe("a restore's storageDir, as far as its path tells (the hub's DTO and the agent's parser both ask this)", () => {
  it.each(['/var/lib/libvirt/images', '/srv/vm+disks/a.b_c-d', `/${'s'.repeat(255)}`, `/${'a/'.repeat(511)}b`, '/devices', '/system', '/procedures'])('takes %s', (dir) => {
    expect(storageDirProblem(dir)).toBeNull();
  });

  it.each([
    ['relative/dir', 'storageDir must be an absolute path of plain segments (A-Z a-z 0-9 . _ + -, no . or ..)'],
    ['/tmp/../etc', 'storageDir must be an absolute path of plain segments (A-Z a-z 0-9 . _ + -, no . or ..)'],
    ['/tmp/./x', 'storageDir must be an absolute path of plain segments (A-Z a-z 0-9 . _ + -, no . or ..)'],
    ['/tmp//x', 'storageDir must be an absolute path of plain segments (A-Z a-z 0-9 . _ + -, no . or ..)'],
    ['/tmp/x/', 'storageDir must be an absolute path of plain segments (A-Z a-z 0-9 . _ + -, no . or ..)'],
    ['/tmp/a\0b', 'storageDir must be an absolute path of plain segments (A-Z a-z 0-9 . _ + -, no . or ..)'],
    ['/tmp/a b', 'storageDir must be an absolute path of plain segments (A-Z a-z 0-9 . _ + -, no . or ..)'],
    [`/${'s'.repeat(256)}`, 'storageDir segments must be at most 255 characters each (one has 256)'],
    [`/${'a/'.repeat(512)}b`, 'storageDir must be at most 1024 characters (it has 1026)'],
    ['/proc', 'storageDir may not be in /proc, /sys or /dev'],
    ['/sys/kernel', 'storageDir may not be in /proc, /sys or /dev'],
    ['/dev/shm/x', 'storageDir may not be in /proc, /sys or /dev'],
  ])('refuses %j: %s', (dir, problem) => {
    expect(storageDirProblem(dir)).toBe(problem);
  });
});
