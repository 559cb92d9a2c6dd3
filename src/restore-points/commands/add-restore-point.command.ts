import { Command } from '../../eventing/command';
import { RestorePoint } from '../chain.events';
import { ChainAppended } from './chain-appended';

export class AddRestorePointCommand extends Command<ChainAppended> {
  constructor(readonly point: RestorePoint) {
    super();
  }
}
