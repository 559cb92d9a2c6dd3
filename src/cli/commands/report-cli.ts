import type { Writable } from 'node:stream';
import { HubApi } from '../hub-api';
import type { ProtectionReport } from '../../policies/reports/queries/protection-report.query';

export const REPORT_USAGE = `usage:
  sendense report protection [--at TIMESTAMP] [--json]   per VM: policies, newest restore point and its age,
                                                        state, failures in a row, next slot, drills
--at answers as the report read at that moment (rebuilt from the events recorded until then).
`;

/** The table an operator reads: one line per VM, its state first (at risk with how long over its RPO, never backed up, no policy) so what needs doing stands out. */
export function protectionTable(report: ProtectionReport): string {
  const header = ['VM', 'NAME', 'STATE', 'LAST POINT', 'AGE(h)', 'RPO(h)', 'FAILS', 'NEXT SLOT', 'DRILL', 'POLICIES'];
  const rows = report.vms.map((v) => [
    v.vmId,
    v.name ?? '-',
    // a disk no point holds is said with the state: the RPO says nothing of it
    (v.state === 'at-risk' ? `at-risk (${v.overdueHours!.toFixed(1)} h over)` : v.state) + (v.disksLeftOut.length ? `, LACKS ${v.disksLeftOut.map((d) => d.diskId).join(',')}` : ''),
    v.lastRestorePoint?.createdAt ?? '-',
    v.lastRestorePoint ? v.lastRestorePoint.ageHours.toFixed(1) : '-',
    v.rpoHours === null ? '-' : String(v.rpoHours),
    String(v.failuresInRow),
    v.nextSlot ?? '-',
    drillCell(v.drill),
    v.policies.map((p) => `${p.name}${p.enabled ? '' : ' (disabled)'}`).join(', ') || '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return [`protection report at ${report.at}${report.replayed ? ' (rebuilt from the events recorded until then)' : ''}`, line(header), ...rows.map(line)].join('\n') + '\n';
}

/** When the newest drill passed and how long the guest took to answer; a newest drill that failed says so first. */
function drillCell(d: ProtectionReport['vms'][number]['drill']): string {
  if (!d) return '-';
  const passed = d.lastPassedAt ? `passed ${d.lastPassedAt} (${(d.bootMs! / 1000).toFixed(1)} s)` : 'never passed';
  return d.lastPassed ? passed : `FAILED ${d.lastAt}; ${passed}`;
}

/** `sendense report protection [--at TIMESTAMP] [--json]`. */
async function protectionCommand(args: string[], env: NodeJS.ProcessEnv, out: Writable): Promise<number> {
  const atIndex = args.indexOf('--at');
  const at = atIndex >= 0 ? args[atIndex + 1] : undefined;
  if (atIndex >= 0 && !at) {
    process.stderr.write(REPORT_USAGE);
    return 2;
  }
  const report = await new HubApi(env).call<ProtectionReport>('GET', `/api/v1/reports/protection${at ? `?at=${encodeURIComponent(at)}` : ''}`);
  out.write(args.includes('--json') ? `${JSON.stringify(report, null, 2)}\n` : protectionTable(report));
  return 0;
}

/** The `sendense report` commands, by the word after `report`. */
export const REPORT_COMMANDS: Record<string, (args: string[], env: NodeJS.ProcessEnv, out: Writable) => Promise<number>> = {
  protection: protectionCommand,
};

export async function reportCommand(args: string[], env: NodeJS.ProcessEnv, out: Writable = process.stdout): Promise<number> {
  const [what, ...rest] = args;
  if (what === undefined || !Object.hasOwn(REPORT_COMMANDS, what)) {
    process.stderr.write(REPORT_USAGE);
    return 2;
  }
  return REPORT_COMMANDS[what](rest, env, out);
}
