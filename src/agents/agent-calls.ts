import { BadGatewayException, Injectable, ServiceUnavailableException, UnprocessableEntityException } from '@nestjs/common';
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

  /** Whether the agent was running the job (it then ends it and reports its end). */
  async cancel(agentId: string, jobId: string): Promise<boolean> {
    const answer = (await this.call(agentId, 'POST', `/api/v1/backup/${jobId}/cancel`, {})) as { cancelled?: unknown } | null;
    return answer?.cancelled === true;
  }

  /** The target can take the restore (name free, domain shut off, a directory it can write): the agent's refusal becomes the caller's 4xx. */
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
    const base = await this.tunnel.agentApiUrl(agentId).catch((e: unknown) => {
      throw e instanceof DomainError ? e : new ServiceUnavailableException(`agent ${agentId} could not be reached for ${path}: ${errorText(e)}`);
    });
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${base}${path}`, { method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) });
      text = await res.text();
    } catch (e) {
      throw new ServiceUnavailableException(`agent ${agentId} did not answer ${path}: ${errorText(e)}`);
    }
    if (!res.ok) throw agentAnswer(agentId, path, res.status, safeMessage(text));
    return text ? JSON.parse(text) : null;
  }
}

/**
 * The agent's refusal is the caller's answer, with the agent's words: it says what on its host cannot take the
 * request. Any other answer (the agent failing, or refusing the hub itself) is the hub's 502, naming the agent.
 */
function agentAnswer(agentId: string, path: string, status: number, message: string): Error {
  switch (status) {
    case 400:
      return new DomainError('invalid', message);
    case 404:
      return new DomainError('not_found', message);
    case 409:
      return new DomainError('conflict', message);
    case 422:
      return new UnprocessableEntityException(message);
    default:
      return new BadGatewayException(`agent ${agentId} answered ${status} to ${path}: ${message}`);
  }
}

function errorText(e: unknown): string {
  const cause = (e as { cause?: { message?: string } })?.cause?.message;
  // fetch's errors come from another realm under a test runner: read the message, whatever made them
  const message = typeof (e as Error)?.message === 'string' ? (e as Error).message : String(e);
  return `${message}${cause ? ` (${cause})` : ''}`;
}

function safeMessage(text: string): string {
  try {
    return String((JSON.parse(text) as { message?: unknown }).message ?? text).slice(0, 500);
  } catch {
    return text.slice(0, 500);
  }
}
