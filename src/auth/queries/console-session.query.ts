import { Query } from '@nestjs/cqrs';

export interface ActiveConsoleSession {
  sessionId: string;
  secretHash: string;
  tokenHash: string;
  expiresAt: Date;
}

/** The console session as last recorded, or null when it was never started or has been ended (logged out). */
export class ConsoleSessionQuery extends Query<ActiveConsoleSession | null> {
  constructor(readonly sessionId: string) {
    super();
  }
}
