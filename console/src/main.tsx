import { render } from 'preact';
import { useEffect } from 'preact/hooks';
import { Job } from './jobs/job';
import { Jobs } from './jobs/jobs';
import { Login } from './pages/login';
import { Overview } from './pages/overview';
import { navigate, onLink, useRoute } from './router';
import { session } from './session';
import './style.css';

function App() {
  const route = useRoute();
  const path = route.split('?')[0];
  const loggedOut = path !== '/login' && !session.token();
  useEffect(() => {
    if (loggedOut) navigate(`/login?next=${encodeURIComponent(route)}`, true);
  }, [loggedOut, route]);
  if (path === '/login') return <Login />;
  if (loggedOut) return null;
  return (
    <>
      <header>
        <nav aria-label="console">
          <a href="/console/" onClick={onLink} aria-current={path === '/' ? 'page' : undefined}>Protection</a>
          <a href="/console/jobs" onClick={onLink} aria-current={path.startsWith('/jobs') ? 'page' : undefined}>Jobs</a>
          <button type="button" onClick={() => (session.logout(), navigate('/login', true))}>Log out</button>
        </nav>
      </header>
      <Page path={path} />
    </>
  );
}

function Page({ path }: { path: string }) {
  const job = /^\/jobs\/([0-9a-f-]{36})$/.exec(path);
  if (path === '/') return <Overview />;
  if (path === '/jobs') return <Jobs />;
  if (job) return <Job jobId={job[1]} />;
  return <NotFound path={path} />;
}

function NotFound({ path }: { path: string }) {
  return (
    <main>
      <h1>Not found</h1>
      <p>The console has no page at {path}.</p>
    </main>
  );
}

render(<App />, document.getElementById('app')!);
