import { Injectable, Logger } from '@nestjs/common';
import { CommandGateway } from '../projection-runner/command-gateway';
import { AdminTokenFile } from './adapters/admin-token-file';
import { RotateAdminTokenCommand } from './tokens/commands/rotate-admin-token.command';

export interface AdminTokenRotation {
  generation: number;
  /** Shown this once. */
  token: string;
  /** Where this hub wrote it (its admin.token), or null for a hub given SENDENSE_ADMIN_TOKEN. */
  file: string | null;
}

/**
 * The rotation is recorded first, then the file written: a file written first would hold a token that does not
 * work if the append failed, while a file that cannot be written after the append leaves the caller the token in
 * the answer (the failure is logged and the answer says no file was written).
 */
@Injectable()
export class AdminTokenRotationWorkflow {
  private readonly logger = new Logger(AdminTokenRotationWorkflow.name);

  constructor(
    private readonly gateway: CommandGateway,
    private readonly file: AdminTokenFile,
  ) {}

  async rotate(): Promise<AdminTokenRotation> {
    const { generation, token } = await this.gateway.execute(new RotateAdminTokenCommand());
    let file: string | null = null;
    try {
      file = this.file.replace(token);
    } catch (error) {
      this.logger.error(`the admin token was rotated (generation ${generation}) but admin.token could not be written: ${String(error)}`);
    }
    this.logger.log(`admin token rotated (generation ${generation})${file ? `; written to ${file}` : ''}`);
    return { generation, token, file };
  }
}
