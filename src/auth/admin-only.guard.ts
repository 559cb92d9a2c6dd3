import { applyDecorators, CanActivate, ForbiddenException, Injectable, UseGuards } from '@nestjs/common';
import { currentContext } from '../eventing/request-context';
import { ADMIN_ACTOR } from './admin-token';

@Injectable()
export class AdminOnlyGuard implements CanActivate {
  canActivate(): boolean {
    if (currentContext().actor !== ADMIN_ACTOR) throw new ForbiddenException('only the admin token may do this');
    return true;
  }
}

/** Who may call a route is said where the route is declared, never inside its body. */
export const AdminOnly = () => applyDecorators(UseGuards(AdminOnlyGuard));
