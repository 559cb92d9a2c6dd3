import { AccessGuard } from '../http/access.guard';
import { DownloadLinks } from './download-links';
import { DownloadLinksController } from './download-links.controller';
import { SessionController } from './session.controller';
import { ApiTokensController } from './tokens/api-tokens.controller';
import { IssueApiTokenHandler } from './tokens/commands/issue-api-token.handler';
import { RevokeApiTokenHandler } from './tokens/commands/revoke-api-token.handler';
import { TokenVerifier } from './token-verifier';
import { TokenBoundResponses } from './token-bound-responses';
import { AdminTokenHandler } from './admin-token.queries';
import { AdminTokenRotationWorkflow } from './admin-token.workflow';
import { AdminTokenFile } from './adapters/admin-token-file';
import { RotateAdminTokenHandler } from './tokens/commands/rotate-admin-token.handler';
import { ConsoleSessions } from './console-sessions';
import { ConsoleSessionHandler } from './console-session.queries';
import { StartConsoleSessionHandler } from './console-sessions/commands/start-console-session.handler';
import { EndConsoleSessionHandler } from './console-sessions/commands/end-console-session.handler';

export const authFeature = {
  controllers: [ApiTokensController, SessionController, DownloadLinksController],
  providers: [TokenVerifier, TokenBoundResponses, DownloadLinks, IssueApiTokenHandler, RevokeApiTokenHandler, RotateAdminTokenHandler, AdminTokenHandler, AdminTokenRotationWorkflow, AdminTokenFile, AccessGuard, ConsoleSessions, ConsoleSessionHandler, StartConsoleSessionHandler, EndConsoleSessionHandler],
};
