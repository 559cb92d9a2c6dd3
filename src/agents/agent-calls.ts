import { BadGatewayException, Injectable, ServiceUnavailableException, UnprocessableEntityException } from '@nestjs/common';
import { DomainError } from '../eventing/domain-error';
import { AgentTunnel } from './agent-tunnel.service';
import { DISK_FORMATS, keptLeftOut, leftOutProblem, PlanAnswer, PlanRequest, StartRequest } from '../wire/backup-protocol';
import { identifierProblem, printable } from '../wire/identifiers';
import type { RestoreCheckRequest, RestoreStartRequest } from '../wire/restore-protocol';

/** The hub's requests to an agent's API, through that agent's tunnel: backups and restores. */
@Injectable()
export class AgentCalls {
  constructor(private readonly tunnel: AgentTunnel) {}

  /** The agent's plan is hostile input: its disk ids become file names in the repository (see planProblem). */
  async plan(agentId: string, request: PlanRequest): Promise<PlanAnswer> {
    const answer = await this.call(agentId, 'POST', '/api/v1/backup/plan', request);
    const problem = planProblem(answer);
    if (problem) throw new BadGatewayException(`agent ${agentId} answered /api/v1/backup/plan with an invalid plan: ${problem}`);
    const { mode, reason, chainBroken, disks, leftOut } = answer as PlanAnswer;
    return {
      mode,
      reason: reason === null ? null : printable(reason.slice(0, 2000)),
      ...(chainBroken ? { chainBroken } : {}),
      disks: disks.map(({ diskId, virtualSize, format }) => ({ diskId, virtualSize, format })),
      ...(leftOut?.length ? { leftOut: keptLeftOut(leftOut) } : {}),
    };
  }

  /** Whether the agent still runs the job: until it has delivered the job's last report, it does. */
  async backupRunning(agentId: string, jobId: string): Promise<boolean> {
    const answer = (await this.call(agentId, 'GET', `/api/v1/backup/${jobId}`, undefined)) as { running?: unknown } | null;
    if (typeof answer?.running !== 'boolean') throw new BadGatewayException(`agent ${agentId} answered /api/v1/backup/${jobId} without saying whether it runs the job`);
    return answer.running;
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

/** More disks than any VM has (VMware's limit is below 256 too): a plan past it is the agent misbehaving, not a VM. */
const MAX_PLAN_DISKS = 256;

/**
 * Why an agent's plan cannot be used, or null. Each disk id names the point's file of that disk
 * (`<vm>/<diskId>/...`, `chunks/points/<vm>/<point>/<diskId>.idx`): an id with `/` or `..` would make the hub create
 * and export, writable, a file of another VM or another repository.
 */
export function planProblem(answer: unknown): string | null {
  if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) return 'it is not an object';
  const { mode, reason, chainBroken, disks, leftOut } = answer as Record<string, unknown>;
  if (mode !== 'full' && mode !== 'incremental') return 'mode must be full or incremental';
  if (reason !== null && typeof reason !== 'string') return 'reason must be a string or null';
  if (chainBroken !== undefined && typeof chainBroken !== 'boolean') return 'chainBroken must be a boolean';
  if (!Array.isArray(disks) || disks.length === 0 || disks.length > MAX_PLAN_DISKS) return `disks must list 1 to ${MAX_PLAN_DISKS} disks`;
  const seen = new Set<string>();
  for (const [i, disk] of disks.entries()) {
    if (typeof disk !== 'object' || disk === null) return `disks[${i}] is not an object`;
    const { diskId, virtualSize, format } = disk as Record<string, unknown>;
    const problem = identifierProblem(`disks[${i}].diskId`, diskId);
    if (problem) return problem;
    if (seen.has(diskId as string)) return `disks[${i}].diskId ${diskId as string} is listed twice`;
    seen.add(diskId as string);
    if (typeof virtualSize !== 'number' || !Number.isSafeInteger(virtualSize) || virtualSize < 0) return `disks[${i}].virtualSize must be a whole number of bytes, 0 or more`;
    if (!(DISK_FORMATS as readonly unknown[]).includes(format)) return `disks[${i}].format must be ${DISK_FORMATS.join(' or ')}`;
  }
  return leftOut === undefined ? null : leftOutProblem('leftOut', leftOut);
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
