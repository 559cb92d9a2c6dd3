/**
 * Who is logged in, kept in this page's memory only. The token typed at the log-in is traded at once for the hub's
 * session cookie (HttpOnly: no script reads it, an injected one included) and then forgotten; nothing goes to
 * localStorage, sessionStorage or a URL. A reload asks the hub again who the cookie is. The CSRF token the hub gives
 * with it goes with every request that changes something. The role only decides which actions the console offers;
 * the API refuses the others anyway.
 */
export type Role = 'admin' | 'operator' | 'viewer';

interface Who {
  role: Role;
  tenantId: string | null;
  csrfToken: string;
}

let who: Who | null = null;

const CONSOLE_ROLES: string[] = ['admin', 'operator', 'viewer'];

/** The hub's answer to a log-in or to GET /api/v1/session, kept if it is a console session; else why not. */
async function take(res: Response): Promise<string | null> {
  const { role, tenantId, csrfToken } = (await res.json()) as { role: string; tenantId: string | null; csrfToken?: string };
  if (!CONSOLE_ROLES.includes(role)) return `A token with the role ${role} cannot use the console.`;
  if (!csrfToken) return 'The hub opened no console session.';
  who = { role: role as Role, tenantId, csrfToken };
  return null;
}

export const session = {
  loggedIn: (): boolean => who !== null,
  role: (): Role => who?.role ?? 'viewer',
  /** The tenant the token is confined to: the hub shows it that tenant's objects only. */
  tenant: (): string | null => who?.tenantId ?? null,
  /** Sent as X-Sendense-CSRF with every POST, PUT, PATCH and DELETE. */
  csrf: (): string | null => who?.csrfToken ?? null,
  /** Trades the token for the session cookie; null when logged in, else what to tell the operator. */
  async logIn(token: string): Promise<string | null> {
    const res = await fetch('/api/v1/session', { method: 'POST', credentials: 'same-origin', headers: { Authorization: `Bearer ${token}` } });
    if (res.status === 401) return 'The hub does not know this token.';
    if (res.status === 403) return ((await res.json()) as { message: string }).message;
    if (!res.ok) return `The hub answered ${res.status}.`;
    return take(res);
  },
  /** At start: the session the cookie still holds, if any. */
  async resume(): Promise<void> {
    const res = await fetch('/api/v1/session', { credentials: 'same-origin' }).catch(() => null);
    if (res?.ok) await take(res);
  },
  /** The hub said the session is gone (401): forget who it was. */
  forget: (): void => void (who = null),
  async logOut(): Promise<void> {
    const csrf = who?.csrfToken;
    who = null;
    await fetch('/api/v1/session', { method: 'DELETE', credentials: 'same-origin', headers: csrf ? { 'X-Sendense-CSRF': csrf } : {} }).catch(() => undefined);
  },
  /** Backups, restores, mounts and policies: what an operator or admin may start. */
  mayOperate: (): boolean => session.role() !== 'viewer',
};
