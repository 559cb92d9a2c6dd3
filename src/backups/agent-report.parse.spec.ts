import { DomainError } from '../eventing/domain-error';
import { parseAgentReport } from './agent-report.parse';

/** An agent's report is hostile input: what it may not carry is a 400 (DomainError 'invalid'), never a TypeError (500) or a value a read model cannot hold. */
describe('parseAgentReport', () => {
  const completed = { type: 'transfer-completed', diskId: 'disk0', bytesWritten: 4096, bytesZeroed: 0, bytesPlanned: 4096, durationMs: 12, changeRef: null };
  const refused = (body: Record<string, unknown>) => {
    try {
      parseAgentReport(body);
    } catch (error) {
      expect(error).toBeInstanceOf(DomainError);
      return (error as DomainError).message;
    }
    throw new Error(`accepted ${JSON.stringify(body)}`);
  };

  it('takes the reports the agent sends, as it sends them', () => {
    expect(parseAgentReport(completed)).toEqual(completed);
    expect(parseAgentReport({ ...completed, changeRef: '52 aa', bytesKnown: 0 })).toEqual({ ...completed, changeRef: '52 aa', bytesKnown: 0 });
    expect(parseAgentReport({ type: 'transfer-progressed', diskId: 'disk0', bytesDone: 1, bytesPlanned: 2, rate: 1.5 })).toEqual({ type: 'transfer-progressed', diskId: 'disk0', bytesDone: 1, bytesPlanned: 2, rate: 1.5 });
    expect(parseAgentReport({ type: 'failed', reason: 'x'.repeat(3000) })).toEqual({ type: 'failed', reason: 'x'.repeat(2000) });
    expect(parseAgentReport({ type: 'failed' })).toEqual({ type: 'failed', reason: 'unknown' });
    // a job's error is shown to operators: what would drive their terminal is not kept
    expect(parseAgentReport({ type: 'failed', reason: 'disk full\u001b]0;owned\u0007\r' })).toEqual({ type: 'failed', reason: 'disk full?]0;owned??' });
  });

  it('refuses byte counts and durations that are not whole numbers: the read models keep them in bigint columns', () => {
    for (const field of ['bytesWritten', 'bytesZeroed', 'bytesPlanned', 'durationMs', 'bytesKnown']) {
      expect(refused({ ...completed, [field]: 0.5 })).toBe(`${field} must be a whole number`);
    }
    expect(refused({ ...completed, bytesWritten: 2 ** 60 })).toBe('bytesWritten must be a whole number');
    expect(refused({ type: 'transfer-started', diskId: 'disk0', bytesPlanned: 1.5 })).toBe('bytesPlanned must be a whole number');
    expect(refused({ type: 'transfer-progressed', diskId: 'disk0', bytesDone: 0.1, bytesPlanned: 2, rate: 1 })).toBe('bytesDone must be a whole number');
  });

  it('refuses a reason or change reference that is not text, where String() of it would throw', () => {
    expect(refused({ type: 'failed', reason: { toString: 1 } })).toBe('reason must be a string');
    expect(refused({ type: 'failed', reason: 7 })).toBe('reason must be a string');
    expect(refused({ ...completed, changeRef: { toString: 1 } })).toBe('changeRef must be a string');
  });
});
