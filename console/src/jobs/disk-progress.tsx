import { bytes, duration } from '../format';
import type { DiskView } from './job-view';

/** One disk's transfer: a progress bar that states its value, with bytes, rate and the time left at that rate. */
export function DiskProgress({ jobId, disk }: { jobId: string; disk: DiskView }) {
  const percent = disk.bytesPlanned ? Math.min(100, Math.floor((disk.bytesDone / disk.bytesPlanned) * 100)) : disk.done ? 100 : 0;
  const eta = disk.rate > 0 && !disk.done ? (disk.bytesPlanned - disk.bytesDone) / disk.rate : NaN;
  const label = `${disk.diskId} of job ${jobId.slice(0, 8)}`;
  return (
    <div class="disk" data-disk={disk.diskId}>
      <span class="disk-name">{disk.diskId}</span>
      <div role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={percent} class="bar">
        <div style={{ width: `${percent}%` }} />
      </div>
      <span class="disk-figures">
        {/* a disk with nothing reported yet (or nothing to copy) is not shown as "0% · 0 B of 0 B" */}
        {!disk.bytesPlanned && !disk.bytesDone ? (disk.done ? 'done' : 'waiting') : `${percent}% · ${bytes(disk.bytesDone)} of ${bytes(disk.bytesPlanned)}`}
        {disk.done ? (disk.bytesPlanned ? ' · done' : '') : disk.rate > 0 ? ` · ${bytes(disk.rate)}/s · ${duration(eta)} left` : ''}
      </span>
    </div>
  );
}
