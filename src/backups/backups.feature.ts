import { AgentCalls } from './agent-calls';
import { BackupEventsStream } from './backup-events.stream';
import { BackupsController } from './backups.controller';
import { BackupsService } from './backups.service';

export const backupsFeature = {
  controllers: [BackupsController],
  providers: [AgentCalls, BackupsService, BackupEventsStream],
};
