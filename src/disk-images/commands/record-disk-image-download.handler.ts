import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { Appended } from '../../eventing/command';
import { currentContext } from '../../eventing/request-context';
import { diskImageDownloadsAggregate } from '../disk-image-downloads.aggregate';
import { diskImageDownloadsStream } from '../disk-image.events';
import { RecordDiskImageDownloadCommand } from './record-disk-image-download.command';

@CommandHandler(RecordDiskImageDownloadCommand)
export class RecordDiskImageDownloadHandler implements ICommandHandler<RecordDiskImageDownloadCommand, Appended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordDiskImageDownloadCommand): Promise<Appended> {
    const download = { ...command.download, actor: currentContext().actor };
    const { position } = await this.aggregates.execute(diskImageDownloadsStream(download.restorePointId), diskImageDownloadsAggregate, { kind: 'record', download }, command);
    return { position };
  }
}
