import { Column, Entity, PrimaryColumn } from 'typeorm';

/** Which tenant each agent and repository belongs to; a resource with no row belongs to none. */
@Entity({ name: 'rm_tenancy' })
export class TenancyView {
  @PrimaryColumn({ type: 'text' })
  resource: 'agent' | 'repository';

  @PrimaryColumn({ type: 'text' })
  id: string;

  @Column({ name: 'tenant_id', type: 'text' })
  tenantId: string;
}
