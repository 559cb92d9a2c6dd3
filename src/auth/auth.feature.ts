import { ApiTokensController } from './tokens/api-tokens.controller';
import { IssueApiTokenHandler } from './tokens/issue-api-token.handler';
import { RevokeApiTokenHandler } from './tokens/revoke-api-token.handler';
import { TokenVerifier } from './token-verifier';

export const authFeature = {
  controllers: [ApiTokensController],
  providers: [TokenVerifier, IssueApiTokenHandler, RevokeApiTokenHandler],
};
