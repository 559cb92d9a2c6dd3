import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { Appended } from '../../eventing/command';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { currentContext } from '../../eventing/request-context';
import { restoreMountAggregate } from '../restore-mount.aggregate';
import { restoreMountStream } from '../restore-mount.events';
import { RecordFileDownloadCommand } from './record-file-download.command';

/** The download is recorded with who took it: the caller the request authenticated. */
@CommandHandler(RecordFileDownloadCommand)
export class RecordFileDownloadHandler implements ICommandHandler<RecordFileDownloadCommand, Appended & { eventIds: string[] }> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordFileDownloadCommand): Promise<Appended & { eventIds: string[] }> {
    const { volume, path, range, bytes, complete, integrity } = command;
    const decision = { kind: 'recordFileDownload' as const, volume, path, range, bytes, complete, actor: currentContext().actor, integrity };
    const { eventIds, position } = await this.aggregates.execute(restoreMountStream(command.mountId), restoreMountAggregate, decision, command);
    return { eventIds, position };
  }
}
