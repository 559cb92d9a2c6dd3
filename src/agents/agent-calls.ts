import { Injectable } from '@nestjs/common';
import { DomainError } from '../eventing/domain-error';
import { AgentTunnel } from './agent-tunnel.service';
import { PlanAnswer, PlanRequest, StartRequest } from '../wire/backup-protocol';
import type { RestoreCheckRequest, RestoreStartRequest } from '../wire/restore-protocol';

/** The hub's requests to an agent's API, through that agent's tunnel: backups and restores. */
@Injectable()
export class AgentCalls {
  constructor(private readonly tunnel: AgentTunnel) {}

  plan(agentId: string, request: PlanRequest): Promise<PlanAnswer> {
    return this.call(agentId, 'POST', '/api/v1/backup/plan', request) as Promise<PlanAnswer>;
  }

  async start(agentId: string, request: StartRequest): Promise<void> {
    await this.call(agentId, 'POST', '/api/v1/backup/start', request);
  }

  async cancel(agentId: string, jobId: string): Promise<void> {
    await this.call(agentId, 'POST', `/api/v1/backup/${jobId}/cancel`, {});
  }

  /** The target can take the restore (name free, domain shut off): a 409 of the agent's becomes the caller's. */
  async checkRestore(agentId: string, request: RestoreCheckRequest): Promise<void> {
    await this.call(agentId, 'POST', '/api/v1/restore/check', request);
  }

  async startRestore(agentId: string, request: RestoreStartRequest): Promise<void> {
    await this.call(agentId, 'POST', '/api/v1/restore/start', request);
  }

  async cancelRestore(agentId: string, restoreId: string): Promise<void> {
    await this.call(agentId, 'POST', `/api/v1/restore/${restoreId}/cancel`, {});
  }

  private async call(agentId: string, method: string, path: string, body: unknown): Promise<unknown> {
    const base = await this.tunnel.agentApiUrl(agentId);
    const res = await fetch(`${base}${path}`, { method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) });
    const text = await res.text();
    if (res.status === 409) throw new DomainError('conflict', safeMessage(text));
    if (!res.ok) throw new Error(`agent answered ${res.status} to ${path}: ${safeMessage(text)}`);
    return text ? JSON.parse(text) : null;
  }
}

function safeMessage(text: string): string {
  try {
    return String((JSON.parse(text) as { message?: unknown }).message ?? text).slice(0, 500);
  } catch {
    return text.slice(0, 500);
  }
}
