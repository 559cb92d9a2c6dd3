import { AccessGuard } from '../http/access.guard';
import { DownloadLinks } from './download-links';
import { DownloadLinksController } from './download-links.controller';
import { SessionController } from './session.controller';
import { ApiTokensController } from './tokens/api-tokens.controller';
import { IssueApiTokenHandler } from './tokens/commands/issue-api-token.handler';
import { RevokeApiTokenHandler } from './tokens/commands/revoke-api-token.handler';
import { TokenVerifier } from './token-verifier';

export const authFeature = {
  controllers: [ApiTokensController, SessionController, DownloadLinksController],
  providers: [TokenVerifier, DownloadLinks, IssueApiTokenHandler, RevokeApiTokenHandler, AccessGuard],
};
