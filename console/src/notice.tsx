import { onLink } from './router';

/** What an action answered; its correlation id links to every event it caused. */
export interface Notice {
  text: string;
  alert?: boolean;
  correlationId?: string | null;
}

export const correlationOf = (response: Response) => response.headers.get('x-correlation-id');

export function CorrelationLink({ id }: { id: string }) {
  return <a href={`/console/audit?correlationId=${encodeURIComponent(id)}`} onClick={onLink} data-correlation-link={id}>correlation {id}</a>;
}

export function NoticeLine({ notice }: { notice: Notice | null }) {
  if (!notice) return null;
  return (
    <p role={notice.alert ? 'alert' : 'status'} class={notice.alert ? 'error' : undefined}>
      {notice.text}
      {notice.correlationId && <> (<CorrelationLink id={notice.correlationId} />)</>}
    </p>
  );
}
