import { Type } from 'class-transformer';
import { IsDefined, IsISO8601, ValidateNested } from 'class-validator';
import { PolicyDto } from '../policies.dto';

export class SimulatePolicyDto {
  @IsDefined()
  @ValidateNested()
  @Type(() => PolicyDto)
  policy: PolicyDto;

  @IsISO8601({ strict: true }, { message: 'from must be an ISO 8601 date or time' })
  from: string;

  @IsISO8601({ strict: true }, { message: 'to must be an ISO 8601 date or time' })
  to: string;
}
