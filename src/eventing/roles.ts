/**
 * What a token may do. `agent` is the role of the token an agent gets at registration: it reports on its own
 * jobs, restores and inventory and nothing else. `sync` is the role of the token another hub pulls restore points
 * with: it lists them and reads their files and disks, and nothing else (no deletes, no jobs, no settings).
 */
export const ROLES = ['admin', 'operator', 'viewer', 'agent', 'sync'] as const;
export type Role = (typeof ROLES)[number];

/** The roles POST /tokens gives; `agent` tokens come only from agent registration. */
export const ISSUABLE_ROLES = ['admin', 'operator', 'viewer', 'sync'] as const;
export type IssuableRole = (typeof ISSUABLE_ROLES)[number];

/**
 * The access rule every route declares: `public` (no token), `any` (every valid token), `read` (admin, operator,
 * viewer), `operate` (backups, restores, mounts, policies: admin, operator), `admin`, `agent` (an agent's own
 * reports; the route's ownership guard checks which agent), `export` (a restore point's disks served over NBD:
 * admin, operator, sync), `sync` (what a hub pulling restore points reads: admin, sync).
 */
export const ACCESS_LEVELS = ['public', 'any', 'read', 'operate', 'admin', 'agent', 'export', 'sync'] as const;
export type AccessLevel = (typeof ACCESS_LEVELS)[number];

const ALLOWED: Record<AccessLevel, readonly Role[]> = {
  public: ROLES,
  any: ROLES,
  read: ['admin', 'operator', 'viewer'],
  operate: ['admin', 'operator'],
  admin: ['admin'],
  agent: ['admin', 'agent'],
  export: ['admin', 'operator', 'sync'],
  sync: ['admin', 'sync'],
};

export function roleMay(role: Role, level: AccessLevel): boolean {
  return ALLOWED[level].includes(role);
}

/** Tokens issued before roles existed: an agent's registration token stays an agent's, any other kept what it could do then but tokens. */
export function legacyRole(name: string): Role {
  return name.startsWith('agent-') ? 'agent' : 'operator';
}
