/**
 * The operator's token lives in this tab's sessionStorage only (gone with the tab, never in localStorage or a
 * URL): a reload keeps the session, another tab logs in on its own. The role beside it only decides which
 * actions the console offers; the API refuses the others anyway.
 */
const TOKEN = 'sendense.token';
const ROLE = 'sendense.role';

export type Role = 'admin' | 'operator' | 'viewer';

export const session = {
  token: (): string | null => sessionStorage.getItem(TOKEN),
  role: (): Role => (sessionStorage.getItem(ROLE) as Role | null) ?? 'viewer',
  login: (token: string, role: Role) => (sessionStorage.setItem(TOKEN, token), sessionStorage.setItem(ROLE, role)),
  logout: () => (sessionStorage.removeItem(TOKEN), sessionStorage.removeItem(ROLE)),
  /** Backups, restores, mounts and policies: what an operator or admin may start. */
  mayOperate: (): boolean => session.role() !== 'viewer',
};
