import { Injectable } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import { Appended, Command } from '../eventing/command';
import { ProjectionsService } from './projections.service';

/**
 * Read-your-writes for HTTP callers: the command goes through the CommandBus, then the answer
 * waits until the named read models applied what it appended, so the caller's next GET sees it.
 */
@Injectable()
export class CommandGateway {
  constructor(
    private readonly commands: CommandBus,
    private readonly projections: ProjectionsService,
  ) {}

  async execute<R extends Appended>(command: Command<R>, ...readModels: string[]): Promise<Omit<R, 'position'>> {
    const { position, ...rest } = await this.commands.execute(command);
    await Promise.all(readModels.map((name) => this.projections.waitFor(name, position)));
    return rest;
  }
}
