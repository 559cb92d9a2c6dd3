import { useState } from 'preact/hooks';
import { navigate, useRoute } from '../router';
import { session } from '../session';

/** A token, traded with the hub for a session cookie and then forgotten; then back to where the operator was going. */
export function Login() {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const next = new URLSearchParams(useRoute().split('?')[1] ?? '').get('next') ?? '/';

  async function submit(e: Event) {
    e.preventDefault();
    const refused = await session.logIn(token);
    setToken('');
    if (refused) return setError(refused);
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
