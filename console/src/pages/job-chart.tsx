/** One day's finished jobs, as `GET /reports/jobs` counts them in the browser's time zone. */
export interface DayCount {
  day: string;
  successes: number;
  failures: number;
}

/** The last `n` days (YYYY-MM-DD, this browser's zone), oldest first, ending today. */
export function lastDays(n: number, now = new Date()): string[] {
  const format = new Intl.DateTimeFormat('en-CA', { year: 'numeric', month: '2-digit', day: '2-digit' });
  return Array.from({ length: n }, (_, i) => {
    const d = new Date(now);
    d.setHours(12, 0, 0, 0);
    d.setDate(d.getDate() - (n - 1 - i));
    return format.format(d);
  });
}

/** A y-axis top that is a round number at or above `max`, so the gridlines read as whole jobs. */
export function axisTop(max: number): number {
  if (max <= 4) return Math.max(max, 1);
  const step = 10 ** Math.floor(Math.log10(max));
  return Math.ceil(max / (step / 2)) * (step / 2);
}

const W = 560;
const H = 160;
const LEFT = 32;
const BOTTOM = 22;
const TOP = 10;

/**
 * Job outcomes per day as stacked bars, completed below failed, drawn by hand in SVG (no chart library's bytes).
 * The same figures are in a table for screen readers, and each bar names its day and counts.
 */
export function JobChart({ days, counts }: { days: string[]; counts: DayCount[] }) {
  const byDay = new Map(counts.map((c) => [c.day, c]));
  const rows = days.map((day) => byDay.get(day) ?? { day, successes: 0, failures: 0 });
  const top = axisTop(Math.max(0, ...rows.map((r) => r.successes + r.failures)));
  const slot = (W - LEFT - 14) / rows.length;
  const y = (v: number) => ((H - BOTTOM - TOP) * v) / top;
  const label = (day: string) => new Date(`${day}T12:00:00`).toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
  return (
    <figure class="job-chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby="job-chart-caption" class="chart">
        {[0, top / 2, top].map((v) => (
          <g key={v}>
            <line x1={LEFT} x2={W} y1={H - BOTTOM - y(v)} y2={H - BOTTOM - y(v)} class="grid" />
            <text x={LEFT - 4} y={H - BOTTOM - y(v) + 4} text-anchor="end" class="tick">{Number.isInteger(v) ? v : ''}</text>
          </g>
        ))}
        {rows.map((r, i) => {
          const x = LEFT + i * slot + slot * 0.15;
          const w = slot * 0.7;
          return (
            <g key={r.day} data-day={r.day} data-completed={r.successes} data-failed={r.failures}>
              <title>{`${label(r.day)}: ${r.successes} completed, ${r.failures} failed`}</title>
              <rect x={x} width={w} y={H - BOTTOM - y(r.successes)} height={y(r.successes)} class="ok" />
              <rect x={x} width={w} y={H - BOTTOM - y(r.successes + r.failures)} height={y(r.failures)} class="bad" />
              {((rows.length - 1 - i) % 2 === 0 || rows.length <= 7) && <text x={x + w / 2} y={H - 6} text-anchor="middle" class="tick">{label(r.day)}</text>}
            </g>
          );
        })}
      </svg>
      <figcaption id="job-chart-caption">
        Jobs finished per day, last {days.length} days: <span class="key key-ok">completed</span> <span class="key key-bad">failed</span>
      </figcaption>
      <table class="visually-hidden">
        <caption>Jobs finished per day</caption>
        <thead><tr><th scope="col">Day</th><th scope="col">Completed</th><th scope="col">Failed</th></tr></thead>
        <tbody>{rows.map((r) => <tr key={r.day}><th scope="row">{r.day}</th><td>{r.successes}</td><td>{r.failures}</td></tr>)}</tbody>
      </table>
    </figure>
  );
}
