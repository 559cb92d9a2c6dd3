import { applyDecorators, CanActivate, ExecutionContext, ForbiddenException, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiExtension } from '@nestjs/swagger';
import { currentContext } from '../eventing/request-context';
import { AccessLevel, roleMay } from '../eventing/roles';

const ACCESS = 'sendense:access';
const REFUSAL = 'sendense:access-refusal';

/**
 * Who may call a route is said where the route is declared (`@Access(level)` on the method or its controller),
 * never inside its body; the OpenAPI document carries it as `x-sendense-access`. `refusal` is the 403 message.
 */
export const Access = (level: AccessLevel, refusal?: string) =>
  applyDecorators(SetMetadata(ACCESS, level), ApiExtension('x-sendense-access', level), ...(refusal ? [SetMetadata(REFUSAL, refusal)] : []));

const REFUSALS: Record<AccessLevel, string> = {
  public: '',
  any: '',
  read: 'this token may not read this',
  operate: 'a viewer token may only read: this needs the operator or admin role',
  admin: 'only an admin token may do this',
  agent: "only an agent's own token may report this",
  export: 'a viewer token may only read: serving a disk needs the operator, admin or sync role',
  sync: 'only an admin token or a sync token may read restore points for another hub',
};

/** Runs before every route's own guards; a route that declares no rule is refused, so a new route cannot be open by omission. */
@Injectable()
export class AccessGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    const targets = [context.getHandler(), context.getClass()];
    const level = this.reflector.getAllAndOverride<AccessLevel | undefined>(ACCESS, targets);
    if (!level) throw new ForbiddenException(`${context.getClass().name}.${context.getHandler().name} declares no access rule`);
    if (level === 'public') return true;
    const role = currentContext().role;
    if (!role || !roleMay(role, level)) throw new ForbiddenException(this.reflector.getAllAndOverride<string | undefined>(REFUSAL, targets) ?? REFUSALS[level]);
    return true;
  }
}
