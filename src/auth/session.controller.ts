import { BadRequestException, Controller, Delete, Get, HttpCode, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiProperty, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { currentContext } from '../eventing/request-context';
import { Access } from '../http/access.guard';
import { ROLES, type Role } from '../eventing/roles';
import { Owned } from '../http/owned';
import { CommandGateway } from '../projection-runner/command-gateway';
import { EndConsoleSessionCommand } from './console-sessions/commands/end-console-session.command';
import { StartConsoleSessionCommand } from './console-sessions/commands/start-console-session.command';
import { clearCookieHeader, setCookieHeader } from './console-sessions/session-cookie';

export class SessionDto {
  @ApiProperty({ example: 'alice', description: 'the name events caused with this token carry as their actor' })
  actor: string;

  @ApiProperty({ enum: ROLES })
  role: Role;

  @ApiProperty({ nullable: true, type: String, description: 'the tenant the token is confined to; null: every tenant' })
  tenantId: string | null;

  @ApiPropertyOptional({
    description: "a console session's CSRF token (absent for a bearer token): to send as X-Sendense-CSRF with every POST, PUT, PATCH and DELETE the session cookie carries; kept in the page's memory, never in storage",
  })
  csrfToken?: string;
}

function whoami(csrfToken = currentContext().session?.csrfToken): SessionDto {
  const { actor, role, tenantId } = currentContext();
  return { actor, role: role!, tenantId: tenantId ?? null, ...(csrfToken ? { csrfToken } : {}) };
}

/** Who the caller is (the console shows only the actions its role may take: the API refuses the others anyway), and the console's log-in and log-out. */
@ApiTags('tokens')
@ApiBearerAuth()
@Controller('api/v1/session')
export class SessionController {
  constructor(private readonly gateway: CommandGateway) {}

  @Access('any')
  @Owned('none')
  @Get()
  @ApiOkResponse({ type: SessionDto })
  whoami(): SessionDto {
    return whoami();
  }

  /**
   * Log-in: the token (in the Authorization header, where a form of another site cannot put it) is traded for an
   * HttpOnly cookie, so the browser's scripts never hold it. Agent and sync tokens do not open console sessions.
   */
  @Access('read', 'only an admin, operator or viewer token opens a console session')
  @Owned('none')
  @Post()
  @ApiCreatedResponse({ type: SessionDto })
  async logIn(@Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<SessionDto> {
    if (currentContext().session) throw new BadRequestException('log in with "Authorization: Bearer <token>", not with a session cookie');
    const { cookie, csrfToken } = await this.gateway.execute(new StartConsoleSessionCommand(currentContext().credential!));
    res.setHeader('Set-Cookie', setCookieHeader(cookie, req.secure));
    return whoami(csrfToken);
  }

  /** Log-out: the cookie ends on every hub at once; with a bearer token there is no session, and nothing changes. */
  @Access('any')
  @Owned('none')
  @Delete()
  @HttpCode(204)
  @ApiNoContentResponse()
  async logOut(@Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<void> {
    const session = currentContext().session;
    if (session) await this.gateway.execute(new EndConsoleSessionCommand(session.sessionId));
    res.setHeader('Set-Cookie', clearCookieHeader(req.secure));
  }
}
