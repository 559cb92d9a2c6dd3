import { clearCookieHeader, csrfTokenFor, parseSessionCookie, sessionCookieValue, setCookieHeader } from './session-cookie';

const id = '6c7e1a1e-0f4e-4d2a-9a3c-1b2c3d4e5f60';
const secret = 'A'.repeat(43);

describe('the console session cookie', () => {
  it('is found among the other cookies of the host, and only when well formed', () => {
    expect(parseSessionCookie(`theme=dark; sendense_session=${sessionCookieValue(id, secret)}; other=1`)).toEqual({ sessionId: id, secret });
    expect(parseSessionCookie('sendense_session=sdt_a-bearer-token')).toBeNull();
    expect(parseSessionCookie(`sendense_session=${id}.${secret}x`)).toBeNull();
    expect(parseSessionCookie(`not_sendense_session=${id}.${secret}`)).toBeNull();
    expect(parseSessionCookie(undefined)).toBeNull();
  });

  it('is HttpOnly and SameSite=Strict always, Secure under HTTPS only, and is cleared the same way', () => {
    expect(setCookieHeader('v', false)).toBe('sendense_session=v; Path=/; HttpOnly; SameSite=Strict');
    expect(setCookieHeader('v', true)).toBe('sendense_session=v; Path=/; HttpOnly; SameSite=Strict; Secure');
    expect(clearCookieHeader(true)).toBe('sendense_session=; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=0');
  });

  it("derives a CSRF token that is neither the secret nor its recorded hash", () => {
    const csrf = csrfTokenFor(secret);
    expect(csrf).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(csrf).not.toContain(secret);
    expect(csrfTokenFor('B'.repeat(43))).not.toBe(csrf);
  });
});
