/** The schedules most policies use, read from and written as cron; anything else stays the cron it is. */
export type Preset =
  | { kind: 'hourly'; minute: number }
  | { kind: 'daily'; hour: number; minute: number }
  | { kind: 'weekly'; hour: number; minute: number; days: number[] }
  | { kind: 'custom' };

const NUM = /^\d{1,2}$/;
export function presetOf(cron: string): Preset {
  const f = cron.trim().split(/\s+/);
  if (f.length !== 5 || !NUM.test(f[0]) || +f[0] > 59 || f[2] !== '*' || f[3] !== '*') return { kind: 'custom' };
  const minute = +f[0];
  if (f[1] === '*' && f[4] === '*') return { kind: 'hourly', minute };
  if (!NUM.test(f[1]) || +f[1] > 23) return { kind: 'custom' };
  const hour = +f[1];
  if (f[4] === '*') return { kind: 'daily', hour, minute };
  if (!/^[0-6](,[0-6])*$/.test(f[4])) return { kind: 'custom' };
  return { kind: 'weekly', hour, minute, days: [...new Set(f[4].split(',').map(Number))].sort() };
}

export function cronOf(p: Exclude<Preset, { kind: 'custom' }>): string {
  if (p.kind === 'hourly') return `${p.minute} * * * *`;
  if (p.kind === 'daily') return `${p.minute} ${p.hour} * * *`;
  return `${p.minute} ${p.hour} * * ${(p.days.length ? p.days : [1]).join(',')}`;
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const pad = (n: number) => String(n).padStart(2, '0');

/** How often, in words and a time of day; the cron field below stays for what the presets cannot say. */
export function SchedulePresets({ cron, onCron, disabled }: { cron: string; onCron: (cron: string) => void; disabled: boolean }) {
  const p = presetOf(cron);
  const at = p.kind === 'daily' || p.kind === 'weekly' ? { hour: p.hour, minute: p.minute } : { hour: 2, minute: p.kind === 'hourly' ? p.minute : 0 };
  const choose = (kind: Preset['kind']) => {
    if (kind === 'hourly') onCron(cronOf({ kind, minute: at.minute }));
    if (kind === 'daily') onCron(cronOf({ kind, ...at }));
    if (kind === 'weekly') onCron(cronOf({ kind, ...at, days: p.kind === 'weekly' ? p.days : [1] }));
  };
  const setTime = (value: string) => {
    const [h, m] = value.split(':').map(Number);
    if (Number.isInteger(h) && Number.isInteger(m) && (p.kind === 'daily' || p.kind === 'weekly')) onCron(cronOf({ ...p, hour: h, minute: m }));
  };
  return (
    <fieldset class="presets">
      <legend>How often</legend>
      {/* "custom" is what a cron the presets cannot say reads as: offered only then */}
      {(['hourly', 'daily', 'weekly', ...(p.kind === 'custom' ? (['custom'] as const) : [])] as const).map((kind) => (
        <label key={kind} class="choice-inline">
          <input type="radio" name="p-preset" value={kind} checked={p.kind === kind} onChange={() => choose(kind)} disabled={disabled} />{' '}
          {kind === 'hourly' ? 'every hour' : kind === 'daily' ? 'every day' : kind === 'weekly' ? 'every week' : 'custom (cron below)'}
        </label>
      ))}
      {p.kind === 'hourly' && (
        <label>at minute <input id="p-minute" type="number" min={0} max={59} value={p.minute} onInput={(e) => { const m = Number((e.target as HTMLInputElement).value); if (Number.isInteger(m) && m >= 0 && m <= 59) onCron(cronOf({ kind: 'hourly', minute: m })); }} disabled={disabled} /></label>
      )}
      {(p.kind === 'daily' || p.kind === 'weekly') && (
        <label>at <input id="p-time" type="time" value={`${pad(p.hour)}:${pad(p.minute)}`} onChange={(e) => setTime((e.target as HTMLInputElement).value)} disabled={disabled} /></label>
      )}
      {p.kind === 'weekly' && (
        <span class="days" role="group" aria-label="on these days">
          {DAYS.map((d, i) => (
            <label key={d} class="choice-inline">
              <input type="checkbox" value={i} checked={p.days.includes(i)} onChange={(e) => onCron(cronOf({ ...p, days: (e.target as HTMLInputElement).checked ? [...p.days, i].sort() : p.days.filter((x) => x !== i) }))} disabled={disabled} /> {d.slice(0, 3)}
            </label>
          ))}
        </span>
      )}
    </fieldset>
  );
}
