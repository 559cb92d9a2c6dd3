import { Injectable } from '@nestjs/common';

/**
 * Jobs queued or running in this hub process. Only this process can stop them (it holds their
 * exports and the agent's attention), and a delete must see them before any read model does.
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

  ids(): string[] {
    return [...this.jobs.keys()];
  }
}
