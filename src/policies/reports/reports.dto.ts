import { IsISO8601, IsOptional } from 'class-validator';

export class ProtectionReportParams {
  /** An ISO timestamp: answer as the report read at that moment. */
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'at must be an ISO 8601 timestamp, e.g. 2024-05-01T12:00:00Z' })
  at?: string;
}
