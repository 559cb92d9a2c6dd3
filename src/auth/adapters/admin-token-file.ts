import { Inject, Injectable } from '@nestjs/common';
import { HUB_CONFIG, HubConfig } from '../../config/hub-config';
import { writeAdminTokenFile } from '../admin-token';

/**
 * The admin token where this hub keeps it: `admin.token` in its data dir, which the CLI and `npm run demo` read.
 * A hub given SENDENSE_ADMIN_TOKEN has no file to keep it in (the environment cannot be rewritten): null.
 */
@Injectable()
export class AdminTokenFile {
  constructor(@Inject(HUB_CONFIG) private readonly config: HubConfig) {}

  replace(token: string): string | null {
    return this.config.adminToken ? null : writeAdminTokenFile(this.config.dataDir, token);
  }
}
