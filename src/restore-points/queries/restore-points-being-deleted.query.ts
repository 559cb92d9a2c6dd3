import { Query } from '@nestjs/cqrs';
import { RestorePointRecord } from './restore-point.record';

export class RestorePointsBeingDeletedQuery extends Query<RestorePointRecord[]> {}
