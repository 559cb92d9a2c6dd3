import { fold } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import { consoleSessionAggregate as session } from './console-session.aggregate';
import { CONSOLE_SESSION_ENDED, CONSOLE_SESSION_STARTED, ConsoleSessionEvent } from './console-session.events';

const h1 = '1'.repeat(64);
const h2 = '2'.repeat(64);
const start = { kind: 'start', sessionId: 's1', secretHash: h1, tokenHash: h2, expiresAt: '2026-01-01T12:00:00.000Z' } as const;
const started: ConsoleSessionEvent = { type: CONSOLE_SESSION_STARTED, data: { sessionId: 's1', secretHash: h1, tokenHash: h2, expiresAt: '2026-01-01T12:00:00.000Z' } };
const ended: ConsoleSessionEvent = { type: CONSOLE_SESSION_ENDED, data: { sessionId: 's1', reason: 'logout' } };

describe('console session rules', () => {
  it('starts a session once', () => {
    expect(session.decide(start, session.initialState())).toEqual([started]);
    expect(() => session.decide(start, fold(session, [started]))).toThrow(DomainError);
  });

  it('refuses anything but sha256 hex, so neither the cookie secret nor the token can land in the event', () => {
    expect(() => session.decide({ ...start, secretHash: 'the-secret-itself' }, session.initialState())).toThrow(/sha256/);
    expect(() => session.decide({ ...start, tokenHash: 'sdt_the-token-itself' }, session.initialState())).toThrow(/sha256/);
  });

  it('ends an active session once; ending it again changes nothing; an unknown one is not found', () => {
    expect(session.decide({ kind: 'end', sessionId: 's1' }, fold(session, [started]))).toEqual([ended]);
    expect(session.decide({ kind: 'end', sessionId: 's1' }, fold(session, [started, ended]))).toEqual([]);
    expect(() => session.decide({ kind: 'end', sessionId: 's1' }, session.initialState())).toThrow(/does not exist/);
  });
});
