import { Query } from '@nestjs/cqrs';

/** A registered repository as the read model holds it. */
export interface RepositoryRecord {
  repositoryId: string;
  name: string;
  kind: 'local' | 'nfs' | 'cifs';
  root: string;
  source: Record<string, unknown> | null;
  lowSpace: boolean;
  registeredAt: Date;
}

/** Every repository not removed, oldest registration first. */
export class ActiveRepositoriesQuery extends Query<RepositoryRecord[]> {}
