import createClient, { type Middleware } from 'openapi-fetch';
import { toLogin } from '../router';
import { session } from '../session';
import type { paths } from './schema';

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Every call goes with the session cookie (the browser sends it; no script holds the token), and every call that
 * changes something with the session's CSRF token; a 401 (logged out, expired, the token revoked) goes back to the login.
 */
const auth: Middleware = {
  onRequest({ request }) {
    const csrf = session.csrf();
    if (csrf && !SAFE.has(request.method)) request.headers.set('X-Sendense-CSRF', csrf);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401) {
      session.forget();
      toLogin();
    }
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: location.origin, credentials: 'same-origin' });
api.use(auth);

/** The API's own words for a refusal: its `message` (a string, or the list a 400 names). */
export function problem(error: unknown): string {
  const message = (error as { message?: unknown } | undefined)?.message;
  return Array.isArray(message) ? message.join('; ') : typeof message === 'string' ? message : 'the hub did not answer';
}
