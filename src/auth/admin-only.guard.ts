import { applyDecorators, CanActivate, ExecutionContext, ForbiddenException, Injectable, SetMetadata, UseGuards } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { currentContext } from '../eventing/request-context';
import { ADMIN_ACTOR } from './admin-token';

const REFUSAL = 'sendense:admin-only-refusal';

@Injectable()
export class AdminOnlyGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    if (currentContext().actor !== ADMIN_ACTOR) {
      const refusal = this.reflector.getAllAndOverride<string | undefined>(REFUSAL, [context.getHandler(), context.getClass()]);
      throw new ForbiddenException(refusal ?? 'only the admin token may do this');
    }
    return true;
  }
}

/** Who may call a route is said where the route is declared, never inside its body; `refusal` is the 403 message. */
export const AdminOnly = (refusal?: string) => applyDecorators(...(refusal ? [SetMetadata(REFUSAL, refusal)] : []), UseGuards(AdminOnlyGuard));
