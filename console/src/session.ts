/**
 * The operator's token lives in this tab's sessionStorage only (gone with the tab, never in localStorage or a
 * URL): a reload keeps the session, another tab logs in on its own. The role beside it only decides which
 * actions the console offers; the API refuses the others anyway.
 */
const TOKEN = 'sendense.token';
const ROLE = 'sendense.role';
const TENANT = 'sendense.tenant';

export type Role = 'admin' | 'operator' | 'viewer';

export const session = {
  token: (): string | null => sessionStorage.getItem(TOKEN),
  role: (): Role => (sessionStorage.getItem(ROLE) as Role | null) ?? 'viewer',
  /** The tenant the token is confined to: the hub shows it that tenant's objects only. */
  tenant: (): string | null => sessionStorage.getItem(TENANT),
  login: (token: string, role: Role, tenantId: string | null) => {
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.setItem(ROLE, role);
    if (tenantId) sessionStorage.setItem(TENANT, tenantId);
    else sessionStorage.removeItem(TENANT);
  },
  logout: () => [TOKEN, ROLE, TENANT].forEach((k) => sessionStorage.removeItem(k)),
  /** Backups, restores, mounts and policies: what an operator or admin may start. */
  mayOperate: (): boolean => session.role() !== 'viewer',
};
