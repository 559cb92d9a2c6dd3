import { problem } from '../api/client';
import { onLink } from '../router';
import { session } from '../session';

/** Why the hub refused a page's read: its status and its own words. */
export interface Refusal {
  status: number;
  message: string;
}

/** The refusal of an openapi-fetch answer, or null when there was none. */
export function refusalOf(answer: { error?: unknown; response: Response }): Refusal | null {
  return answer.error ? { status: answer.response.status, message: problem(answer.error) } : null;
}

/**
 * A page that could not be shown, said as the operator would say it, with the way back: "No VM vm1 in tenant
 * globex", not the API's "vm vm1 does not exist"; the API's words stay below for whoever reports it.
 */
export function Failure({ title, refusal, missing, back = { href: '/console/', label: 'Back to Protection' } }: { title: string; refusal: Refusal; missing: string; back?: { href: string; label: string } }) {
  const tenant = session.tenant();
  const sentence =
    refusal.status === 404
      ? `${missing}${tenant ? ` in tenant ${tenant}` : ''}.`
      : refusal.status === 403
        ? `Your ${session.role()} token may not see this.`
        : refusal.status >= 500
          ? 'The hub could not answer just now. Try again in a moment; if it keeps failing, its log says why.'
          : `The hub refused: ${refusal.message}.`;
  return (
    <main>
      <h1>{title}</h1>
      <div class="failure">
        <p role="alert" class="error" data-status={refusal.status}>{sentence}</p>
        <p class="hub-said">The hub said: <q>{refusal.message}</q> ({refusal.status})</p>
        <p><a href={back.href} onClick={onLink}>{back.label}</a></p>
      </div>
    </main>
  );
}
