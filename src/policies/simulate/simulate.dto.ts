import { Type } from 'class-transformer';
import { IsDefined, ValidateNested } from 'class-validator';
import { PolicyDto } from '../policies.dto';
import { IsInstant } from '../../http/instants';

export class SimulatePolicyDto {
  @IsDefined()
  @ValidateNested()
  @Type(() => PolicyDto)
  policy: PolicyDto;

  @IsInstant('from must be an ISO 8601 date or time, e.g. 2026-11-01 or 2026-11-01T00:00:00Z')
  from: string;

  @IsInstant('to must be an ISO 8601 date or time, e.g. 2026-11-15 or 2026-11-15T00:00:00Z')
  to: string;
}
