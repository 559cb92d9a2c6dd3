import { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Logger } from 'nestjs-pino';
import { BearerAuthMiddleware } from '../auth/bearer-auth.middleware';
import { ConsoleSessions } from '../auth/console-sessions';
import { DownloadLinks } from '../auth/download-links';
import { TokenBoundResponses } from '../auth/token-bound-responses';
import { TokenVerifier } from '../auth/token-verifier';
import { consoleDir, serveConsole } from '../console/console-files';
import { RequestContextMiddleware } from '../http/request-context.middleware';
import { securityHeaders } from '../http/security-headers';
import { strictValidationPipe } from '../http/validation';
import { HubModule } from './hub.module';
import { HubRuntime } from './hub-runtime';

/**
 * Builds the hub's Nest application without listening. The browser security headers,
 * correlation and auth run as the first middlewares so they also cover /api/docs and /metrics;
 * the console's static files (no data in them) pass auth and are served before any route.
 */
export async function createHubApp(runtime: HubRuntime): Promise<INestApplication> {
  const https = runtime.apiCertificate ? { httpsOptions: { cert: runtime.apiCertificate.cert, key: runtime.apiCertificate.key } } : {};
  // A console's live stream never ends by itself, and a browser reconnects as soon as it is dropped: a hub told to
  // stop cuts the connections still open when its listener closes rather than waiting for them forever.
  const app = await NestFactory.create<NestExpressApplication>(HubModule.create(runtime), { bufferLogs: true, bodyParser: true, forceCloseConnections: true, ...https });
  // says which framework (and so which of its flaws) answers, to anyone who asks
  app.disable('x-powered-by');
  app.useLogger(app.get(Logger));
  app.useGlobalPipes(strictValidationPipe());
  const context = new RequestContextMiddleware();
  const auth = new BearerAuthMiddleware(app.get(TokenVerifier), app.get(DownloadLinks), app.get(TokenBoundResponses), app.get(ConsoleSessions));
  app.use(securityHeaders);
  app.use(context.use.bind(context));
  app.use(auth.use.bind(auth));
  app.use('/console', serveConsole(consoleDir()));
  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder().setTitle('Sendense hub').setVersion('1').addBearerAuth().build(),
  );
  SwaggerModule.setup('api/docs', app, document, { jsonDocumentUrl: 'api/docs-json' });
  return app;
}
