import { insideRoot, OutsideRootError } from './inside-root';

describe('insideRoot', () => {
  const root = '/srv/repo';

  it('returns the absolute path of a file inside the repository, given relative or absolute', () => {
    expect(insideRoot(root, 'vm1/disk1/rp-1.qcow2')).toBe('/srv/repo/vm1/disk1/rp-1.qcow2');
    expect(insideRoot(root, '/srv/repo/vm1/manifests/rp-1.json')).toBe('/srv/repo/vm1/manifests/rp-1.json');
    expect(insideRoot('/srv/repo/', 'vm1/a/../b.qcow2')).toBe('/srv/repo/vm1/b.qcow2');
    expect(insideRoot(root, 'vm1/..hidden')).toBe('/srv/repo/vm1/..hidden');
  });

  it.each([
    ['a traversal out of the repository', 'vm-b/../../../../x/disk/rp.qcow2'],
    ['the parent directory', '..'],
    ['an absolute path elsewhere', '/etc/passwd'],
    ['a sibling whose name starts with the root', '/srv/repo-other/vm1/rp.qcow2'],
    ['the root itself', '.'],
    ['a NUL byte', 'vm1/rp\0.qcow2'],
  ])('refuses %s', (_why, path) => {
    expect(() => insideRoot(root, path)).toThrow(OutsideRootError);
    expect(() => insideRoot(root, path)).toThrow(/is not inside the repository \/srv\/repo$/);
  });
});
