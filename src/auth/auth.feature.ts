import { AccessGuard } from '../http/access.guard';
import { SessionController } from './session.controller';
import { ApiTokensController } from './tokens/api-tokens.controller';
import { IssueApiTokenHandler } from './tokens/commands/issue-api-token.handler';
import { RevokeApiTokenHandler } from './tokens/commands/revoke-api-token.handler';
import { TokenVerifier } from './token-verifier';

export const authFeature = {
  controllers: [ApiTokensController, SessionController],
  providers: [TokenVerifier, IssueApiTokenHandler, RevokeApiTokenHandler, AccessGuard],
};
