import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { Role } from '../../src/eventing/roles';

@Entity({ name: 'rm_api_tokens' })
export class ApiTokenView {
  @PrimaryColumn({ name: 'token_id', type: 'uuid' })
  tokenId: string;

  @Column({ type: 'text' })
  name: string;

  @Column({ type: 'text' })
  role: Role;

  @Column({ name: 'tenant_id', type: 'text', nullable: true })
  tenantId: string | null;

  @Column({ name: 'token_hash', type: 'text', unique: true })
  tokenHash: string;

  @Column({ type: 'text' })
  status: 'active' | 'revoked';

  @Column({ name: 'issued_by', type: 'text' })
  issuedBy: string;

  @Column({ name: 'issued_at', type: 'timestamptz' })
  issuedAt: Date;

  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true })
  revokedAt: Date | null;
}
