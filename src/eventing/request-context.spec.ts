import { causedBy, currentContext, ownStory, runWithContext } from './request-context';

describe('request context', () => {
  it('causedBy keeps the correlation id and names the event as the cause', () => {
    const seen = runWithContext({ correlationId: 'slot', actor: 'ops' }, () => causedBy('fired-1', () => currentContext()));
    expect(seen).toEqual({ correlationId: 'slot', actor: 'system', causationId: 'fired-1' });
  });

  it('ownStory gives the work a fresh correlation id of its own, keeping its cause and actor', () => {
    const [first, second] = runWithContext({ correlationId: 'slot', actor: 'system' }, () =>
      causedBy('fired-1', () => [ownStory(() => currentContext()), ownStory(() => currentContext())]),
    );
    expect(first).toMatchObject({ actor: 'system', causationId: 'fired-1' });
    expect(first.correlationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(['slot', first.correlationId, second.correlationId]).size).toBe(3);
    // the caller's own context is untouched
    expect(runWithContext({ correlationId: 'slot', actor: 'system' }, () => (ownStory(() => undefined), currentContext().correlationId))).toBe('slot');
  });
});
