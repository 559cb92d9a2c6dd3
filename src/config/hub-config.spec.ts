import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { ConfigError, loadHubConfig } from './hub-config';

describe('hub configuration', () => {
  it('has working defaults: embedded database, events in PostgreSQL, port 8082 on loopback', () => {
    expect(loadHubConfig({})).toEqual({
      dataDir: resolve('./var'),
      databaseUrl: null,
      eventStoreUrl: null,
      apiPort: 8082,
      apiBind: '127.0.0.1',
      apiTls: { enabled: false, certFile: null, keyFile: null },
      adminToken: null,
      logLevel: 'info',
      nbdPorts: { first: 10100, last: 10200 },
      nbdBind: '0.0.0.0',
      hostId: hostname(),
      exportRoots: [resolve('./var/repositories')],
      capacityIntervalMs: 300_000,
      lowSpacePercent: 10,
      sshPort: 2222,
      sshBind: '0.0.0.0',
      maxConcurrentBackups: 4,
      restoreIdleMs: 3_600_000,
      deleteGraceMs: 7 * 86_400_000,
      recyclePurgeIntervalMs: 300_000,
      goneHubCheckMs: 30_000,
      goneHubAfterMs: 600_000,
    });
  });

  it('reads the NBD port range and refuses reversed or malformed ranges', () => {
    expect(loadHubConfig({ SENDENSE_NBD_PORTS: '20000-20009' }).nbdPorts).toEqual({ first: 20000, last: 20009 });
    expect(() => loadHubConfig({ SENDENSE_NBD_PORTS: '200-100' })).toThrow(/SENDENSE_NBD_PORTS must be a range/);
    expect(() => loadHubConfig({ SENDENSE_NBD_PORTS: '10100' })).toThrow(/SENDENSE_NBD_PORTS/);
    expect(() => loadHubConfig({ SENDENSE_NBD_PORTS: '1-70000' })).toThrow(/SENDENSE_NBD_PORTS/);
    expect(() => loadHubConfig({ SENDENSE_EXPORT_ROOTS: 'relative/path' })).toThrow(/absolute paths/);
    expect(loadHubConfig({ SENDENSE_NBD_BIND: '192.0.2.7' }).nbdBind).toBe('192.0.2.7');
    expect(() => loadHubConfig({ SENDENSE_NBD_BIND: 'hub.example' })).toThrow(/SENDENSE_NBD_BIND must be an IP address/);
  });

  it('takes every setting from the environment', () => {
    const c = loadHubConfig({
      SENDENSE_DATA_DIR: '/srv/sendense',
      DATABASE_URL: 'postgres://u:p@db:5432/sendense',
      EVENTSTORE_URL: 'esdb://es:2113?tls=false',
      SENDENSE_API_PORT: '9000',
      SENDENSE_API_BIND: '0.0.0.0',
      SENDENSE_ADMIN_TOKEN: 'a-long-enough-admin-token',
      SENDENSE_LOG_LEVEL: 'debug',
    });
    expect(c).toMatchObject({ dataDir: '/srv/sendense', apiPort: 9000, apiBind: '0.0.0.0', eventStoreUrl: 'esdb://es:2113?tls=false', logLevel: 'debug' });
  });

  it('reports every bad value at once with a clear message and hides passwords', () => {
    let error: ConfigError | undefined;
    try {
      loadHubConfig({
        SENDENSE_API_PORT: '80a',
        SENDENSE_API_BIND: 'localhost',
        DATABASE_URL: 'mysql://root:secret@db/x',
        EVENTSTORE_URL: 'http://es',
        SENDENSE_ADMIN_TOKEN: 'short',
        SENDENSE_LOG_LEVEL: 'loud',
      });
    } catch (e) {
      error = e as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.problems).toHaveLength(6);
    expect(error!.message).toContain('SENDENSE_API_PORT must be a TCP port number between 1 and 65535, got "80a"');
    expect(error!.message).toContain('SENDENSE_API_BIND must be an IP address');
    expect(error!.message).not.toContain('secret');
  });

  it('serves HTTPS beyond loopback, plain HTTP only on a loopback bind', () => {
    expect(loadHubConfig({ SENDENSE_API_BIND: '0.0.0.0' }).apiTls).toEqual({ enabled: true, certFile: null, keyFile: null });
    expect(loadHubConfig({ SENDENSE_API_BIND: '::' }).apiTls.enabled).toBe(true);
    expect(loadHubConfig({ SENDENSE_API_BIND: '127.0.0.2' }).apiTls.enabled).toBe(false);
    expect(loadHubConfig({ SENDENSE_API_BIND: '::1' }).apiTls.enabled).toBe(false);
    expect(loadHubConfig({ SENDENSE_API_TLS: 'on' }).apiTls.enabled).toBe(true);
    expect(loadHubConfig({ SENDENSE_TLS_CERT: '/etc/hub.crt', SENDENSE_TLS_KEY: '/etc/hub.key' }).apiTls).toEqual({ enabled: true, certFile: '/etc/hub.crt', keyFile: '/etc/hub.key' });
    let error: ConfigError | undefined;
    try {
      loadHubConfig({ SENDENSE_API_BIND: '0.0.0.0', SENDENSE_API_TLS: 'off', SENDENSE_TLS_KEY: '/etc/hub.key' });
    } catch (e) {
      error = e as ConfigError;
    }
    expect(error!.problems).toEqual([
      'SENDENSE_TLS_CERT and SENDENSE_TLS_KEY go together: give both files (certificate and its private key, PEM) or neither',
      'SENDENSE_API_TLS=off with SENDENSE_API_BIND=0.0.0.0: other hosts could reach the API and its tokens would cross the network in clear; unset SENDENSE_API_TLS (or set it to on) to serve HTTPS, or bind the API to 127.0.0.1',
    ]);
    expect(() => loadHubConfig({ SENDENSE_API_TLS: 'yes' })).toThrow('SENDENSE_API_TLS must be on or off, got "yes"');
  });

  it('checks the restore idle timeout with every other setting', () => {
    expect(loadHubConfig({ SENDENSE_RESTORE_IDLE_S: '90' }).restoreIdleMs).toBe(90_000);
    let error: ConfigError | undefined;
    try {
      loadHubConfig({ SENDENSE_RESTORE_IDLE_S: 'soon', SENDENSE_LOG_LEVEL: 'loud' });
    } catch (e) {
      error = e as ConfigError;
    }
    expect(error!.problems).toEqual([
      'SENDENSE_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, got "loud"',
      'SENDENSE_RESTORE_IDLE_S must be an integer number of seconds from 1 to 604800, got "soon"',
    ]);
    expect(() => loadHubConfig({ SENDENSE_RESTORE_IDLE_S: '604801' })).toThrow(/SENDENSE_RESTORE_IDLE_S/);
  });

  it('defaults the restore idle timeout to one hour and takes SENDENSE_RESTORE_IDLE_S in seconds', () => {
    expect(loadHubConfig({}).restoreIdleMs).toBe(3_600_000);
    expect(loadHubConfig({ SENDENSE_RESTORE_IDLE_S: '  ' }).restoreIdleMs).toBe(3_600_000);
    expect(loadHubConfig({ SENDENSE_RESTORE_IDLE_S: '1' }).restoreIdleMs).toBe(1000);
    expect(loadHubConfig({ SENDENSE_RESTORE_IDLE_S: ' 900 ' }).restoreIdleMs).toBe(900_000);
  });

  it.each(['0', '-5', '1.5', '1h', '604801', 'abc'])('refuses SENDENSE_RESTORE_IDLE_S=%j with a ConfigError that names the variable', (value) => {
    expect(() => loadHubConfig({ SENDENSE_RESTORE_IDLE_S: value })).toThrow(ConfigError);
    expect(() => loadHubConfig({ SENDENSE_RESTORE_IDLE_S: value })).toThrow(/SENDENSE_RESTORE_IDLE_S must be an integer number of seconds from 1 to 604800/);
  });

  it('refuses port 0 and ports above 65535', () => {
    expect(() => loadHubConfig({ SENDENSE_API_PORT: '0' })).toThrow(ConfigError);
    expect(() => loadHubConfig({ SENDENSE_API_PORT: '70000' })).toThrow(ConfigError);
  });
});
