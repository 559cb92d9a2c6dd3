import { IsOptional } from 'class-validator';
import { IsInstant } from '../../http/instants';

export class ProtectionReportParams {
  /** An ISO timestamp: answer as the report read at that moment. */
  @IsOptional()
  @IsInstant('at must be an ISO 8601 timestamp, e.g. 2024-05-01T12:00:00Z')
  at?: string;
}
