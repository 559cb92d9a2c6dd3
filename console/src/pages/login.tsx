import { useState } from 'preact/hooks';
import { navigate, useRoute } from '../router';
import { session } from '../session';

/** A token, checked against the hub before it is kept; then back to where the operator was going. */
export function Login() {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const next = new URLSearchParams(useRoute().split('?')[1] ?? '').get('next') ?? '/';

  async function submit(e: Event) {
    e.preventDefault();
    const res = await fetch('/api/v1/session', { headers: { Authorization: `Bearer ${token}` } });
    if (res.status === 401) return setError('The hub does not know this token.');
    if (!res.ok) return setError(`The hub answered ${res.status}.`);
    const { role, tenantId } = (await res.json()) as { role: string; tenantId: string | null };
    if (role !== 'admin' && role !== 'operator' && role !== 'viewer') return setError(`A token with the role ${role} cannot use the console.`);
    session.login(token, role, tenantId);
    navigate(next.startsWith('/') && !next.startsWith('//') ? next : '/', true);
  }

  return (
    <main class="login">
      <h1>Sendense</h1>
      <form onSubmit={submit}>
        <label for="token">API token</label>
        <input id="token" type="password" autoComplete="off" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} required />
        <button type="submit">Log in</button>
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}
