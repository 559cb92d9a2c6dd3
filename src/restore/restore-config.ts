import { ConfigError } from '../config/hub-config';

export interface RestoreConfig {
  /** A mount nobody touched for this long is released. */
  idleTimeoutMs: number;
}

export const DEFAULT_RESTORE_IDLE_S = 3600;
/** A week: anything longer is a forgotten mount, not a restore. */
export const MAX_RESTORE_IDLE_S = 7 * 24 * 3600;

/** The restore settings, read from the environment and checked like the hub's own (ConfigError lists every problem). */
export function loadRestoreConfig(env: NodeJS.ProcessEnv): RestoreConfig {
  const raw = env.SENDENSE_RESTORE_IDLE_S?.trim();
  if (raw === undefined || raw === '') return { idleTimeoutMs: DEFAULT_RESTORE_IDLE_S * 1000 };
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_RESTORE_IDLE_S) {
    throw new ConfigError([`SENDENSE_RESTORE_IDLE_S must be an integer number of seconds from 1 to ${MAX_RESTORE_IDLE_S}, got ${JSON.stringify(raw)}`]);
  }
  return { idleTimeoutMs: Number(raw) * 1000 };
}
