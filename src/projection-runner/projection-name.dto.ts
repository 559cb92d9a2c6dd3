import { Matches } from 'class-validator';

export class ProjectionNameParams {
  @Matches(/^[a-z0-9][a-z0-9-]{0,62}$/, { message: 'projection name must be lowercase letters, digits and dashes' })
  name: string;
}
