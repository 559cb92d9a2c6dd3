import { time } from '../format';
import { timeTicks } from './time-axis';

export interface Mark {
  restorePointId: string;
  createdAt: string;
  action: 'keep' | 'prune';
  rule: string;
}

const W = 720;
const LEFT = 16;
const RIGHT = 16;
const LANE = 22;
/** Room a mark and its rule take on the line, so a neighbour within it goes to the next lane down. */
const MARK_WIDTH = 118;

/** What a rule name says, in words, for the mark's tooltip and the table. */
export function ruleWords(m: Mark): string {
  if (m.action === 'keep') return m.rule === 'keep-all' ? 'kept: no rule keeps anything, so everything is kept' : m.rule === 'whole-chain' ? 'kept: an immutable chain goes as a whole' : `kept by ${m.rule}`;
  return m.rule === 'no-rule' ? 'pruned: past every rule\'s count' : `pruned: a newer point of its period is kept by ${m.rule}`;
}

/** A point's shape, centred on (x, y): the action in form as well as in colour. */
function MarkShape({ action, x, y }: { action: Mark['action']; x: number; y: number }) {
  return action === 'keep' ? (
    <>
      <circle cx={x} cy={y} r={7} class="shape" />
      <path d={`M${x - 3.5} ${y} l2.5 2.8 l4.5 -5.6`} class="glyph" />
    </>
  ) : (
    <>
      <rect x={x - 6} y={y - 6} width={12} height={12} class="shape" />
      <path d={`M${x - 3} ${y - 3} l6 6 M${x + 3} ${y - 3} l-6 6`} class="glyph" />
    </>
  );
}

/** What the shapes mean, once above the chains' timelines. */
export function MarkLegend() {
  const icon = (action: Mark['action']) => (
    <svg class={`legend-mark mark-${action}`} viewBox="0 0 16 16" width="16" height="16" aria-hidden="true">
      <MarkShape action={action} x={8} y={8} />
    </svg>
  );
  return (
    <p class="legend">
      {icon('keep')} kept, with the rule that keeps it; {icon('prune')} pruned, with <code>no-rule</code> (past every rule's count) or the rule that keeps a newer point of its period.
    </p>
  );
}

/**
 * One chain's points on a line by date, oldest left: each a shape (a filled disc with a tick kept, a hollow square
 * with a cross pruned: never colour alone) and the rule that decides it. Points too close to tell apart on the line
 * step down to a lane of their own.
 */
export function PruneTimeline({ vmId, marks }: { vmId: string; marks: Mark[] }) {
  if (!marks.length) return <p>{vmId}: no restore points.</p>;
  const sorted = [...marks].sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt));
  const t0 = Date.parse(sorted[0].createdAt);
  const t1 = Date.parse(sorted[sorted.length - 1].createdAt);
  // a chain of points within a few minutes is still drawn over some width, and a lone point in the middle
  const pad = Math.max((t1 - t0) * 0.04, 60_000);
  const [from, to] = [t0 - pad, t1 + pad];
  const x = (t: number) => LEFT + ((t - from) / (to - from)) * (W - LEFT - RIGHT - MARK_WIDTH);
  const laneEnds: number[] = [];
  const placed = sorted.map((m) => {
    const at = x(Date.parse(m.createdAt));
    let lane = laneEnds.findIndex((end) => end <= at);
    if (lane < 0) lane = laneEnds.push(0) - 1;
    laneEnds[lane] = at + MARK_WIDTH;
    return { m, at, lane };
  });
  const axisY = 14 + laneEnds.length * LANE;
  const H = axisY + 34;
  const kept = marks.filter((m) => m.action === 'keep').length;
  const label = `${vmId}: ${marks.length} restore points from ${time(sorted[0].createdAt)} to ${time(sorted[sorted.length - 1].createdAt)}; ${kept} kept, ${marks.length - kept} pruned`;
  return (
    <figure class="chain-timeline">
      <figcaption>
        <strong>{vmId}</strong>: {marks.length} {marks.length === 1 ? 'point' : 'points'}, {kept} kept, {marks.length - kept} pruned
      </figcaption>
      <svg class="timeline" data-timeline={vmId} role="img" aria-label={label} viewBox={`0 0 ${W} ${H}`} width={W} height={H}>
        {timeTicks(from, to, W - LEFT - RIGHT - MARK_WIDTH).map((tick) => (
          <g key={tick.t}>
            <line x1={x(tick.t)} x2={x(tick.t)} y1={6} y2={axisY + 4} class="grid" />
            <text x={x(tick.t)} y={axisY + 18} class="axis-label" text-anchor="middle">{tick.label}</text>
          </g>
        ))}
        <line x1={LEFT} x2={W - RIGHT - MARK_WIDTH} y1={axisY} y2={axisY} class="axis" />
        {placed.map(({ m, at, lane }) => {
          const y = 16 + lane * LANE;
          return (
            <g key={m.restorePointId} data-mark={m.restorePointId} data-action={m.action} data-rule={m.rule} class={`mark mark-${m.action}`}>
              <title>{`${time(m.createdAt)} ${m.restorePointId}: ${ruleWords(m)}`}</title>
              <line x1={at} x2={at} y1={y} y2={axisY} class="stem" />
              <MarkShape action={m.action} x={at} y={y} />
              <text x={at + 11} y={y + 4} class="rule">{m.action === 'keep' ? m.rule : `✕ ${m.rule}`}</text>
            </g>
          );
        })}
      </svg>
    </figure>
  );
}
