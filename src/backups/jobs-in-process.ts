import { Injectable } from '@nestjs/common';

/**
 * Jobs queued or running in this hub process. Only this process can stop them (it holds their
 * exports and the agent's attention), and a new request must not race one that is not yet in a read model.
 */
@Injectable()
export class JobsInProcess {
  private readonly jobs = new Map<string, string>();

  add(jobId: string, vmId: string): void {
    this.jobs.set(jobId, vmId);
  }

  delete(jobId: string): void {
    this.jobs.delete(jobId);
  }

  has(jobId: string): boolean {
    return this.jobs.has(jobId);
  }

  ofVm(vmId: string): string | null {
    for (const [jobId, vm] of this.jobs) if (vm === vmId) return jobId;
    return null;
  }

  ids(): string[] {
    return [...this.jobs.keys()];
  }
}
