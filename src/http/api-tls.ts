export const API_TLS = Symbol('API_TLS');

/** What GET /api/v1/identity says of the API listener; clients pin the fingerprint. */
export interface ApiTlsIdentity {
  tls: boolean;
  certificateFingerprint: string | null;
}
