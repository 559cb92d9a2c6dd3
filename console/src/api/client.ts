import createClient, { type Middleware } from 'openapi-fetch';
import { toLogin } from '../router';
import { session } from '../session';
import type { paths } from './schema';

/** Every call carries the tab's token; a 401 (no token, or one revoked) goes back to the login. */
const auth: Middleware = {
  onRequest({ request }) {
    const token = session.token();
    if (token) request.headers.set('Authorization', `Bearer ${token}`);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401) {
      session.logout();
      toLogin();
    }
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: location.origin });
api.use(auth);

/** The API's own words for a refusal: its `message` (a string, or the list a 400 names). */
export function problem(error: unknown): string {
  const message = (error as { message?: unknown } | undefined)?.message;
  return Array.isArray(message) ? message.join('; ') : typeof message === 'string' ? message : 'the hub did not answer';
}
