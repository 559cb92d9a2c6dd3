import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { Appended } from '../../eventing/command';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { currentContext } from '../../eventing/request-context';
import { restoreMountAggregate } from '../restore-mount.aggregate';
import { restoreMountStream } from '../restore-mount.events';
import { RecordArchiveDownloadCommand } from './record-archive-download.command';

/** The download is recorded with who took it: the caller the request authenticated. */
@CommandHandler(RecordArchiveDownloadCommand)
export class RecordArchiveDownloadHandler implements ICommandHandler<RecordArchiveDownloadCommand, Appended & { eventIds: string[] }> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordArchiveDownloadCommand): Promise<Appended & { eventIds: string[] }> {
    const { volume, path, format, bytes, complete, integrity } = command;
    const decision = { kind: 'recordArchiveDownload' as const, volume, path, format, bytes, complete, actor: currentContext().actor, integrity };
    const { eventIds, position } = await this.aggregates.execute(restoreMountStream(command.mountId), restoreMountAggregate, decision, command);
    return { eventIds, position };
  }
}
