import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiProperty, ApiTags } from '@nestjs/swagger';
import { currentContext } from '../eventing/request-context';
import { Access } from '../http/access.guard';
import { ROLES, type Role } from '../http/roles';
import { Owned } from '../http/owned';

export class SessionDto {
  @ApiProperty({ example: 'alice', description: 'the name events caused with this token carry as their actor' })
  actor: string;

  @ApiProperty({ enum: ROLES })
  role: Role;

  @ApiProperty({ nullable: true, type: String, description: 'the tenant the token is confined to; null: every tenant' })
  tenantId: string | null;
}

/** Who the caller's token is: the console shows only the actions its role may take (the API refuses the others anyway). */
@ApiTags('tokens')
@ApiBearerAuth()
@Controller('api/v1/session')
export class SessionController {
  @Access('any')
  @Owned('none')
  @Get()
  @ApiOkResponse({ type: SessionDto })
  whoami(): SessionDto {
    const { actor, role, tenantId } = currentContext();
    return { actor, role: role!, tenantId: tenantId ?? null };
  }
}
