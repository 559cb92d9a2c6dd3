import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/client';
import { Failure, type Refusal, refusalOf } from '../ui/failure';
import { onLink } from '../router';
import { session } from '../session';

interface PolicySummary {
  policyId: string;
  name: string;
  enabled: boolean;
  rpoHours: number;
  schedule: { cron: string; timezone: string };
  retention: Record<string, number>;
}

/** Every policy, by name: what it protects how often and how long. */
export function Policies() {
  const [policies, setPolicies] = useState<PolicySummary[] | null>(null);
  const [error, setError] = useState<Refusal | null>(null);
  useEffect(() => {
    void api.GET('/api/v1/policies').then((answer) => {
      const refused = refusalOf(answer);
      if (refused) setError(refused);
      else setPolicies(answer.data as unknown as PolicySummary[]);
    });
  }, []);
  if (error) return <Failure title="Policies" refusal={error} missing="No policies" />;
  if (!policies) return <main><h1>Policies</h1><p aria-busy="true">Loading…</p></main>;
  return (
    <main>
      <h1>Policies</h1>
      {session.mayOperate() && <p><a href="/console/policies/new" onClick={onLink}>New policy</a></p>}
      <table>
        <caption>Protection policies</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Schedule</th><th scope="col">Retention</th><th scope="col">RPO</th><th scope="col">Enabled</th></tr></thead>
        <tbody>
          {policies.map((p) => (
            <tr key={p.policyId} data-policy={p.policyId}>
              <th scope="row"><a href={`/console/policies/${p.policyId}`} onClick={onLink}>{p.name}</a></th>
              <td><code>{p.schedule.cron}</code> ({p.schedule.timezone})</td>
              <td>{Object.entries(p.retention).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(', ')}</td>
              <td>{p.rpoHours} h</td>
              <td>{p.enabled ? 'yes' : 'no'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </main>
  );
}
