import { cifsCredentials, cifsMountCommand, CIFS_SHARE, MOUNT_OPTIONS, NFS_EXPORT, NFS_SERVER, nfsMountCommand, unmountCommand } from './mount-commands';

describe('network repository mount commands', () => {
  it('mounts NFS with hard mounts and NFS 4.2 unless options are given', () => {
    expect(nfsMountCommand({ server: 'nas.lan', export: '/export/backups', options: '' }, '/var/lib/sendense/mounts/r1')).toEqual({
      file: 'mount',
      args: ['-t', 'nfs', '-o', 'vers=4.2,hard,timeo=600,retrans=2', 'nas.lan:/export/backups', '/var/lib/sendense/mounts/r1'],
    });
    expect(nfsMountCommand({ server: '10.0.0.5', export: '/b', options: 'vers=3,soft' }, '/m').args).toEqual(['-t', 'nfs', '-o', 'vers=3,soft', '10.0.0.5:/b', '/m']);
  });

  it('mounts CIFS through a credentials file, never with the password on the command line', () => {
    const cmd = cifsMountCommand({ share: '//nas/backups', username: 'backup', passwordFile: '/etc/sendense/cifs.pw', options: 'vers=3.1.1' }, '/m', '/var/lib/sendense/mounts/r2.credentials');
    expect(cmd).toEqual({ file: 'mount', args: ['-t', 'cifs', '//nas/backups', '/m', '-o', 'credentials=/var/lib/sendense/mounts/r2.credentials,vers=3.1.1'] });
    expect(cmd.args.join(' ')).not.toContain('password');
    expect(cifsCredentials('backup', 's3cret')).toBe('username=backup\npassword=s3cret\n');
  });

  it('unmounts by mount point', () => {
    expect(unmountCommand('/m')).toEqual({ file: 'umount', args: ['/m'] });
  });

  it('accepts plausible names and refuses injection attempts', () => {
    expect(NFS_SERVER.test('nas.example.com')).toBe(true);
    expect(NFS_SERVER.test('[fd00::1]')).toBe(true);
    expect(NFS_SERVER.test('nas;rm -rf /')).toBe(false);
    expect(NFS_EXPORT.test('/export/backups')).toBe(true);
    expect(NFS_EXPORT.test('export')).toBe(false);
    expect(CIFS_SHARE.test('//nas/backups')).toBe(true);
    expect(CIFS_SHARE.test('\\\\nas\\backups')).toBe(false);
    expect(MOUNT_OPTIONS.test('vers=4.2,hard')).toBe(true);
    expect(MOUNT_OPTIONS.test('vers=4.2 -o remount')).toBe(false);
  });
});
