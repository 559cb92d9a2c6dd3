import { ConfigError } from '../config/hub-config';
import { loadRestoreConfig } from './restore-config';

describe('restore configuration', () => {
  it('defaults the idle timeout to one hour', () => {
    expect(loadRestoreConfig({})).toEqual({ idleTimeoutMs: 3_600_000 });
    expect(loadRestoreConfig({ SENDENSE_RESTORE_IDLE_S: '  ' })).toEqual({ idleTimeoutMs: 3_600_000 });
  });

  it('takes SENDENSE_RESTORE_IDLE_S in seconds', () => {
    expect(loadRestoreConfig({ SENDENSE_RESTORE_IDLE_S: '1' })).toEqual({ idleTimeoutMs: 1000 });
    expect(loadRestoreConfig({ SENDENSE_RESTORE_IDLE_S: ' 900 ' })).toEqual({ idleTimeoutMs: 900_000 });
  });

  it.each(['0', '-5', '1.5', '1h', '604801', 'abc'])('refuses %j with a ConfigError that names the variable', (value) => {
    expect(() => loadRestoreConfig({ SENDENSE_RESTORE_IDLE_S: value })).toThrow(ConfigError);
    expect(() => loadRestoreConfig({ SENDENSE_RESTORE_IDLE_S: value })).toThrow(/SENDENSE_RESTORE_IDLE_S must be an integer number of seconds from 1 to 604800/);
  });
});
