import { Appended, Command } from '../../../eventing/command';

export interface StartedConsoleSession extends Appended {
  sessionId: string;
  /** The cookie's value: returned this once, set as an HttpOnly cookie, never stored (the event holds its secret's hash). */
  cookie: string;
  /** What the console sends as X-Sendense-CSRF (derived from the secret: src/auth/console-sessions/session-cookie.ts). */
  csrfToken: string;
  expiresAt: Date;
}

/** A browser trades the token it was given for a session cookie bound to that token (`tokenHash`: its sha256 hex). */
export class StartConsoleSessionCommand extends Command<StartedConsoleSession> {
  constructor(readonly tokenHash: string) {
    super();
  }
}
