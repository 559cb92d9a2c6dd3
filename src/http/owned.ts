import { applyDecorators, CanActivate, ExecutionContext, Injectable, NotFoundException, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { QueryBus } from '@nestjs/cqrs';
import { ApiExtension } from '@nestjs/swagger';
import type { Request } from 'express';
import { currentContext } from '../eventing/request-context';
import { UUID_TEXT } from '../wire/identifiers';
import { notFound } from './not-found';
import { OwnedKind, OwnerTenantQuery, TenantObjectsQuery } from './owner-tenant.query';

/**
 * How a route meets tenants, said where the route is declared:
 * - `global`: about the hub itself (tokens, projections, NBD ports, metrics): a tenant's token finds nothing there (404);
 * - `none`: names nothing a tenant owns (the caller's own session, a cron's slots);
 * - `filtered`: a list, which the route narrows to the caller's tenant (TenantScope);
 * - ids: each path parameter or body field named (a dotted path into the body) must be the caller's tenant's,
 *   or the answer is 404 as for an id that does not exist. A body field ending in `!` must be given by a tenant's token.
 */
export type Ownership = 'global' | 'none' | 'filtered' | { params?: Record<string, OwnedKind>; body?: Record<string, OwnedKind | `${OwnedKind}!`> };

const OWNED = 'sendense:owned';

export const Owned = (ownership: Ownership) =>
  applyDecorators(SetMetadata(OWNED, ownership), ApiExtension('x-sendense-tenancy', typeof ownership === 'string' ? ownership : 'owned'));

const at = (body: unknown, path: string): unknown => path.split('.').reduce<unknown>((v, key) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined), body);

/** Runs after AccessGuard; only tokens confined to a tenant are checked. A route without a declaration is closed to them. */
@Injectable()
export class TenantGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly queries: QueryBus,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const tenantId = currentContext().tenantId;
    if (!tenantId) return true;
    const ownership = this.reflector.getAllAndOverride<Ownership | undefined>(OWNED, [context.getHandler(), context.getClass()]);
    const req = context.switchToHttp().getRequest<Request>();
    if (ownership === 'none' || ownership === 'filtered') return true;
    // Nest's own answer to a route that does not exist, to the byte
    if (ownership === undefined || ownership === 'global') throw new NotFoundException(`Cannot ${req.method} ${req.path}`);
    for (const [name, kind] of Object.entries(ownership.params ?? {})) await this.check(kind, req.params[name], tenantId);
    for (const [path, declared] of Object.entries(ownership.body ?? {})) {
      const value = at(req.body, path);
      const kind = declared.replace(/!$/, '') as OwnedKind;
      if (value === undefined || value === null) {
        if (declared.endsWith('!')) throw new NotFoundException(`a tenant's token must name one of its ${kind}s in ${path}`);
        continue;
      }
      await this.check(kind, value, tenantId);
    }
    return true;
  }

  private async check(kind: OwnedKind, id: unknown, tenantId: string): Promise<void> {
    // a malformed id is the validation pipe's to refuse, after the guards
    if (typeof id !== 'string') return;
    const owner = await this.queries.execute(new OwnerTenantQuery(kind, id));
    if (owner.tenantId !== tenantId) throw notFound(`${kind} ${id} does not exist`);
  }
}

/** Narrows lists to what the caller's tenant owns; a caller without a tenant sees everything. */
@Injectable()
export class TenantScope {
  constructor(private readonly queries: QueryBus) {}

  /** What the caller's tenant owns, or null for a caller who sees every tenant. */
  async owned(): Promise<{ agentIds: Set<string>; vmIds: Set<string>; repositoryIds: Set<string> } | null> {
    const tenantId = currentContext().tenantId;
    return tenantId ? this.queries.execute(new TenantObjectsQuery(tenantId)) : null;
  }

  /** Keeps the items whose VM (or agent, or repository) the caller's tenant owns. */
  async filter<T>(items: T[], key: (item: T) => { vmId?: string; agentId?: string; repositoryId?: string }): Promise<T[]> {
    const owned = await this.owned();
    if (!owned) return items;
    return items.filter((item) => {
      const k = key(item);
      if (k.vmId !== undefined) return owned.vmIds.has(k.vmId);
      if (k.agentId !== undefined) return owned.agentIds.has(k.agentId);
      if (k.repositoryId !== undefined) return owned.repositoryIds.has(k.repositoryId);
      return false;
    });
  }

  /**
   * Whether the caller may see an event (audit, live). A stream is owned as what it records; an event that names its
   * VM (a job's request, a restore's) is owned as that VM, so a job is visible from its first event on, before the
   * read models know it. Only answers about objects that exist are remembered in `cache`: one the read models do not
   * know yet is asked again at its stream's next event.
   */
  async eventVisible(event: { streamId: string; data?: Record<string, unknown> }, cache = new Map<string, boolean>()): Promise<boolean> {
    const tenantId = currentContext().tenantId;
    if (!tenantId) return true;
    const known = cache.get(event.streamId);
    if (known !== undefined) return known;
    const vmId = event.data?.vmId;
    const owner = typeof vmId === 'string' ? { kind: 'vm' as const, id: vmId } : streamOwner(event.streamId);
    if (!owner) {
      cache.set(event.streamId, false);
      return false;
    }
    const answer = await this.queries.execute(new OwnerTenantQuery(owner.kind, owner.id));
    const visible = answer.tenantId === tenantId;
    if (answer.exists) cache.set(event.streamId, visible);
    return visible;
  }

  streamVisible(streamId: string, cache?: Map<string, boolean>): Promise<boolean> {
    return this.eventVisible({ streamId }, cache);
  }
}

/** Streams a tenant's token may read, by what they record; every other stream (tokens, ports, processes, slots) is the hub's. */
const STREAM_OWNERS: [RegExp, OwnedKind][] = [
  [new RegExp(`^backup-job-(${UUID_TEXT})$`), 'job'],
  [new RegExp(`^vm-restore-(${UUID_TEXT})$`), 'restore'],
  [new RegExp(`^restore-mount-(${UUID_TEXT})$`), 'mount'],
  [new RegExp(`^point-export-(${UUID_TEXT})$`), 'export'],
  [new RegExp(`^agent-(${UUID_TEXT})$`), 'agent'],
  [new RegExp(`^repository-(${UUID_TEXT})$`), 'repository'],
  [new RegExp(`^policy-(${UUID_TEXT})$`), 'policy'],
  [new RegExp(`^retention-(${UUID_TEXT})$`), 'policy'],
  [new RegExp(`^slots-policy-(${UUID_TEXT})$`), 'policy'],
  [new RegExp(`^drill-slots-policy-(${UUID_TEXT})-agent-${UUID_TEXT}$`), 'policy'],
  [/^vm-backups-(.+)$/, 'vm'],
  [/^disk-image-downloads-(.+)$/, 'point'],
];

export function streamOwner(streamId: string): { kind: OwnedKind; id: string } | null {
  for (const [pattern, kind] of STREAM_OWNERS) {
    const m = pattern.exec(streamId);
    if (m) return { kind, id: m[1] };
  }
  // chain-<vmId>-<repositoryId>: the VM's
  const chain = new RegExp(`^chain-(.+)-(${UUID_TEXT})$`).exec(streamId);
  return chain ? { kind: 'vm', id: chain[1] } : null;
}
