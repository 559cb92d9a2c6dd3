import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { legacyRole } from '../../src/eventing/roles';
import { API_TOKEN_ISSUED, API_TOKEN_REVOKED, ApiTokenIssued } from '../../src/auth/tokens/api-token.events';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';
import { ApiTokenView } from './api-token.entity';

/** Rows per INSERT: 9 parameters each stays far below PostgreSQL's 65,535 per statement. */
const INSERT_CHUNK = 5000;

@Injectable()
export class ApiTokensProjector implements Projector {
  readonly name = 'api-tokens';
  readonly filter = { streamPrefixes: ['api-token-'] };
  readonly tables = ['rm_api_tokens'];

  apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    return this.applyBatch([event], manager);
  }

  /**
   * Issued tokens of the batch go in as one multi-row INSERT (a token revoked in the same batch is
   * inserted revoked); revocations of tokens issued before the batch are UPDATEs. The two touch
   * different rows, so the result is what applying the events one by one gives.
   */
  async applyBatch(events: RecordedEvent[], manager: EntityManager): Promise<void> {
    const repo = manager.getRepository(ApiTokenView);
    const issued = new Map<string, ApiTokenView>();
    const revoked = new Map<string, Date>();
    for (const event of events) {
      switch (event.type) {
        case API_TOKEN_ISSUED: {
          const d = event.data as ApiTokenIssued['data'];
          issued.set(d.tokenId, {
            tokenId: d.tokenId,
            name: d.name,
            tokenHash: d.tokenHash,
            role: d.role ?? legacyRole(d.name),
            tenantId: d.tenantId ?? null,
            status: 'active',
            issuedBy: event.metadata.actor,
            issuedAt: event.createdAt,
            revokedAt: null,
          });
          break;
        }
        case API_TOKEN_REVOKED: {
          const { tokenId } = event.data as { tokenId: string };
          const row = issued.get(tokenId);
          if (row) Object.assign(row, { status: 'revoked', revokedAt: event.createdAt });
          else revoked.set(tokenId, event.createdAt);
          break;
        }
      }
    }
    const rows = [...issued.values()];
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) await repo.insert(rows.slice(i, i + INSERT_CHUNK));
    for (const [tokenId, revokedAt] of revoked) await repo.update({ tokenId }, { status: 'revoked', revokedAt });
  }
}
