/**
 * The shape of a pino logger's methods, so the hub and the agent can pass their own logger
 * straight in; the tunnel never depends on a logging library.
 */
export interface TunnelLogger {
  debug?(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export const silentLogger: TunnelLogger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
