/**
 * An agent runner's `report` callback that keeps every report, and `ended`, which resolves with them all once the
 * report that ends the run ('finished' or 'failed') arrives: a runner's start() returns before its work is done.
 */
export function reportsUntilEnd<R extends { type: string }>(): { report: (id: unknown, report: R) => Promise<void>; ended: Promise<R[]> } {
  const reports: R[] = [];
  let end!: () => void;
  const ended = new Promise<R[]>((resolve) => (end = () => resolve(reports)));
  return {
    report: async (_id, report) => {
      reports.push(report);
      if (report.type === 'finished' || report.type === 'failed') end();
    },
    ended,
  };
}
