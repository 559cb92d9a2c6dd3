import { bytes, time } from '../format';
import { dayStarts, timeTicks } from './time-axis';

export interface Simulation {
  from: string;
  to: string;
  slots: number;
  policy: { schedule: { cron: string; timezone: string }; rpoHours: number };
  repositoryBytes: { date: string; bytes: number }[];
  vms: { vmId: string; name: string; unmodelled: string | null; backups: number; rpoViolations: { from: string; to: string; hours: number }[] }[];
}

const W = 720;
const LEFT = 96;
const RIGHT = 14;
const TOP = 26;
const SIZE_H = 150;
const LANE_H = 18;
const LANE_GAP = 6;

/** 0 and three to six round steps above the largest value, in the binary unit it reads best in. */
export function byteTicks(max: number): number[] {
  if (max <= 0) return [0];
  const unit = 1024 ** Math.min(4, Math.floor(Math.log(Math.max(1, max)) / Math.log(1024)));
  const raw = max / unit / 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((f) => f * magnitude).find((s) => s >= raw)! * unit);
  const ticks: number[] = [];
  for (let v = 0; v < max + step; v += step) ticks.push(v);
  return ticks;
}
const axisBytes = (n: number) => bytes(n).replace(/\.0 /, ' ');

const shortName = (name: string) => (name.length > 14 ? `${name.slice(0, 13)}…` : name);

/**
 * The backtest on a real time axis (the policy's days, ticked at each day's start): the repository's size on a byte
 * scale, then one lane per VM with the spans it was past its RPO hatched; and, above, a warning when the schedule had
 * no slot at all in the window, which would otherwise read as a quiet, empty chart.
 */
export function BacktestChart({ simulation, days }: { simulation: Simulation; days: number }) {
  const { schedule } = simulation.policy;
  const tz = schedule.timezone;
  const from = Date.parse(simulation.from);
  const to = Date.parse(simulation.to);
  const series = simulation.repositoryBytes;
  const violations = simulation.vms.flatMap((vm) => vm.rpoViolations.map((v) => ({ ...v, vm: vm.name })));
  const plotW = W - LEFT - RIGHT;
  const x = (t: number) => LEFT + ((t - from) / (to - from)) * plotW;
  const ticks = byteTicks(Math.max(0, ...series.map((s) => s.bytes)));
  const top = ticks[ticks.length - 1] || 1;
  const y = (b: number) => TOP + SIZE_H - (b / top) * SIZE_H;
  // each day's value is its size at the day's end: a step from the day's start to its end
  const bounds = [from, ...dayStarts(from, to, tz), to];
  const steps = series.map((s, i) => ({ ...s, x0: x(bounds[Math.min(i, bounds.length - 1)]), x1: x(bounds[Math.min(i + 1, bounds.length - 1)]) }));
  const path = steps.map((s, i) => `${i ? 'L' : 'M'}${s.x0.toFixed(1)},${y(s.bytes).toFixed(1)} L${s.x1.toFixed(1)},${y(s.bytes).toFixed(1)}`).join(' ');
  const lanesTop = TOP + SIZE_H + 24;
  const axisY = lanesTop + simulation.vms.length * (LANE_H + LANE_GAP) + 2;
  const H = axisY + 30;
  const last = series[series.length - 1];
  const peak = Math.max(0, ...series.map((s) => s.bytes));
  const summary = `Backtest over ${days} days in ${tz}: ${simulation.slots} scheduled runs; repository size ${series.length ? `from ${bytes(series[0].bytes)} to ${bytes(last.bytes)}, peak ${bytes(peak)}` : 'not simulated'}; ${violations.length} RPO violation(s)`;
  return (
    <>
      {simulation.slots === 0 && (
        <p role="status" class="warning" data-no-runs="">
          <span aria-hidden="true">⚠ </span>This schedule would not have run once in the last {days} days: <code>{schedule.cron}</code> ({tz}) names no time between {time(simulation.from)} and {time(simulation.to)}, so no backup and no restore point would have been made.
        </p>
      )}
      {!simulation.vms.some((vm) => !vm.unmodelled) && <p>No VM to simulate: the policy selects no VM with a completed backup in this repository.</p>}
      <figure class="backtest" data-days={series.length} data-violations={violations.length} data-slots={simulation.slots}>
        <svg role="img" aria-label={summary} viewBox={`0 0 ${W} ${H}`} width={W} height={H} class="chart">
          <defs>
            <pattern id="breach-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
              <rect width="6" height="6" class="breach-fill" />
              <line x1="0" y1="0" x2="0" y2="6" class="breach-line" />
            </pattern>
          </defs>
          <text x={LEFT} y={TOP - 12} class="axis-title" text-anchor="middle">size</text>
          {ticks.map((b) => (
            <g key={b}>
              <line x1={LEFT} x2={W - RIGHT} y1={y(b)} y2={y(b)} class={b ? 'grid' : 'axis'} />
              <text x={LEFT - 6} y={y(b) + 4} class="axis-label" text-anchor="end">{axisBytes(b)}</text>
            </g>
          ))}
          <line x1={LEFT} x2={LEFT} y1={TOP} y2={TOP + SIZE_H} class="axis" />
          <path d={path} class="size-line" />
          <text x={LEFT - 8} y={lanesTop - 6} class="axis-title" text-anchor="end">RPO ({simulation.policy.rpoHours} h)</text>
          {simulation.vms.map((vm, i) => {
            const ly = lanesTop + i * (LANE_H + LANE_GAP);
            return (
              <g key={vm.vmId} data-lane={vm.vmId} data-breaches={vm.rpoViolations.length}>
                <title>{vm.unmodelled ? `${vm.name}: not simulated (${vm.unmodelled})` : `${vm.name}: ${vm.backups} backup(s), past its RPO ${vm.rpoViolations.length} time(s)`}</title>
                <text x={LEFT - 8} y={ly + LANE_H - 5} class="axis-label" text-anchor="end">{shortName(vm.name)}</text>
                <rect x={LEFT} y={ly} width={plotW} height={LANE_H} class={vm.unmodelled ? 'lane lane-unknown' : 'lane'} />
                {vm.unmodelled && <text x={LEFT + 6} y={ly + LANE_H - 5} class="axis-label">not simulated: {vm.unmodelled}</text>}
                {vm.rpoViolations.map((v) => (
                  <rect key={v.from} data-breach-from={v.from} x={x(Date.parse(v.from))} y={ly} width={Math.max(2, x(Date.parse(v.to)) - x(Date.parse(v.from)))} height={LANE_H} class="breach" />
                ))}
              </g>
            );
          })}
          <line x1={LEFT} x2={W - RIGHT} y1={axisY} y2={axisY} class="axis" />
          {bounds.slice(1, -1).map((t) => <line key={t} x1={x(t)} x2={x(t)} y1={axisY} y2={axisY + 4} class="axis" data-day-tick="" />)}
          {timeTicks(from, to, plotW, tz, 60).map((tick) => (
            <g key={tick.t}>
              <line x1={x(tick.t)} x2={x(tick.t)} y1={TOP} y2={axisY + 7} class="grid" />
              <text x={x(tick.t)} y={axisY + 20} class="axis-label" text-anchor="middle">{tick.label}</text>
            </g>
          ))}
        </svg>
        <figcaption>
          {summary}. <span class="legend"><span class="key key-size" aria-hidden="true" /> repository size at each day's end; <span class="key key-breach" aria-hidden="true" /> hatched: a VM's newest point older than its RPO</span>
          {violations.length > 0 && ` (${violations.map((v) => `${v.vm} ${v.hours.toFixed(1)} h from ${time(v.from)}`).join(', ')})`}.
        </figcaption>
      </figure>
    </>
  );
}
