import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api } from './api/client';
import { Job } from './jobs/job';
import { Jobs } from './jobs/jobs';
import { Audit } from './audit/audit';
import { Infrastructure } from './infrastructure/infrastructure';
import { Login } from './pages/login';
import { Policies } from './policies/policies';
import { PolicyForm } from './policies/policy-form';
import { MountBrowser } from './restore/mount';
import { RestorePage } from './restore/restore';
import { Vm } from './vms/vm';
import { Overview } from './pages/overview';
import { navigate, onLink, useRoute } from './router';
import { session } from './session';
import './style.css';

/** What needs the operator, on every page: VMs at risk and VMs whose last backup failed, from the protection report. */
function useAttention(loggedIn: boolean): { atRisk: number; failed: number } | null {
  const [counts, setCounts] = useState<{ atRisk: number; failed: number } | null>(null);
  useEffect(() => {
    if (!loggedIn) return;
    const load = async () => {
      const { data } = await api.GET('/api/v1/reports/protection');
      const vms = (data as unknown as { vms: { state: string; failuresInRow: number }[] } | undefined)?.vms;
      if (vms) setCounts({ atRisk: vms.filter((v) => v.state === 'at-risk').length, failed: vms.filter((v) => v.failuresInRow > 0).length });
    };
    void load();
    const timer = setInterval(() => void load(), 15_000);
    return () => clearInterval(timer);
  }, [loggedIn]);
  return counts;
}

const NavCount = ({ n, what, name }: { n: number | undefined; what: string; name: string }) =>
  n ? <span class="nav-count" data-nav-count={name}>{n} {what}</span> : null;

function App() {
  const route = useRoute();
  const path = route.split('?')[0];
  const loggedOut = path !== '/login' && !session.loggedIn();
  const attention = useAttention(!loggedOut && path !== '/login');
  useEffect(() => {
    if (loggedOut) navigate(`/login?next=${encodeURIComponent(route)}`, true);
  }, [loggedOut, route]);
  if (path === '/login') return <Login />;
  if (loggedOut) return null;
  return (
    <>
      <header>
        <nav aria-label="console">
          <a href="/console/" onClick={onLink} aria-current={path === '/' ? 'page' : undefined}>Protection <NavCount n={attention?.atRisk} what="at risk" name="at-risk" /></a>
          <a href="/console/jobs" onClick={onLink} aria-current={path.startsWith('/jobs') ? 'page' : undefined}>Jobs <NavCount n={attention?.failed} what="failed" name="failed" /></a>
          <a href="/console/policies" onClick={onLink} aria-current={path.startsWith('/policies') ? 'page' : undefined}>Policies</a>
          <a href="/console/audit" onClick={onLink} aria-current={path === '/audit' ? 'page' : undefined}>Audit</a>
          <a href="/console/infrastructure" onClick={onLink} aria-current={path === '/infrastructure' ? 'page' : undefined}>Repositories and agents</a>
          {session.tenant() && <span class="tenant" data-tenant={session.tenant()!}>tenant {session.tenant()}</span>}
          <button type="button" onClick={() => void session.logOut().then(() => navigate('/login', true))}>Log out</button>
        </nav>
      </header>
      <Page path={path} />
    </>
  );
}

function Page({ path }: { path: string }) {
  const job = /^\/jobs\/([0-9a-f-]{36})$/.exec(path);
  const vm = /^\/vms\/([^/]+)$/.exec(path);
  const mount = /^\/mounts\/([0-9a-f-]{36})$/.exec(path);
  if (path === '/') return <Overview />;
  if (path === '/jobs') return <Jobs />;
  if (path === '/audit') return <Audit />;
  if (path === '/policies') return <Policies />;
  if (path === '/policies/new') return <PolicyForm policyId={null} />;
  const policy = /^\/policies\/([0-9a-f-]{36})$/.exec(path);
  if (policy) return <PolicyForm key={policy[1]} policyId={policy[1]} />;
  if (path === '/infrastructure') return <Infrastructure />;
  if (job) return <Job jobId={job[1]} />;
  if (vm) return <Vm vmId={decodeURIComponent(vm[1])} />;
  if (mount) return <MountBrowser mountId={mount[1]} />;
  const restore = /^\/restores\/([0-9a-f-]{36})$/.exec(path);
  if (restore) return <RestorePage restoreId={restore[1]} />;
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

// the cookie (if any) says who is logged in before the first page asks for anything
void session.resume().then(() => render(<App />, document.getElementById('app')!));
