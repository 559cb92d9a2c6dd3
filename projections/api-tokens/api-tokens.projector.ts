import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { API_TOKEN_ISSUED, API_TOKEN_REVOKED } from '../../src/auth/tokens/api-token.events';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';
import { ApiTokenView } from './api-token.entity';

@Injectable()
export class ApiTokensProjector implements Projector {
  readonly name = 'api-tokens';
  readonly filter = { streamPrefixes: ['api-token-'] };
  readonly tables = ['rm_api_tokens'];

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const repo = manager.getRepository(ApiTokenView);
    switch (event.type) {
      case API_TOKEN_ISSUED: {
        const d = event.data as { tokenId: string; name: string; tokenHash: string };
        await repo.insert({
          tokenId: d.tokenId,
          name: d.name,
          tokenHash: d.tokenHash,
          status: 'active',
          issuedBy: event.metadata.actor,
          issuedAt: event.createdAt,
          revokedAt: null,
        });
        return;
      }
      case API_TOKEN_REVOKED: {
        const d = event.data as { tokenId: string };
        await repo.update({ tokenId: d.tokenId }, { status: 'revoked', revokedAt: event.createdAt });
        return;
      }
    }
  }
}
