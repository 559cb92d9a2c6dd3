import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HUB_CONFIG, HubConfig } from '../../config/hub-config';
import { HubSecrets } from '../../database/hub-secrets';
import { DomainError } from '../../eventing/domain-error';
import { UUID_TEXT } from '../../wire/identifiers';

const KIND = 'remote-sync-token';
const TOKEN_FILE = new RegExp(`^(${UUID_TEXT})\\.token$`);

/**
 * The token a remote issued this hub, kept in the database (HubSecrets) where every hub process sharing it reads
 * it, so that any of them runs the remote's sync jobs, and never in an event: a sync token reads every restore point
 * of the remote. Hubs before this kept it in their own data dir (`remotes/<remoteId>.token`): such a file is copied
 * into the database at the start of the hub that has it, and left there for a hub of the version before to read.
 */
@Injectable()
export class RemoteTokens implements OnApplicationBootstrap {
  private readonly logger = new Logger('remote-tokens');

  constructor(
    private readonly secrets: HubSecrets,
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const dir = join(this.config.dataDir, 'remotes');
    const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? [] : Promise.reject(e)));
    for (const name of names) {
      const remoteId = TOKEN_FILE.exec(name)?.[1];
      if (!remoteId) continue;
      const token = await readFile(join(dir, name), 'utf8').then(
        (t) => t.trim(),
        (e: Error) => this.logger.warn(`the token file of remote ${remoteId} could not be read, and stays where it is: ${e.message}`),
      );
      if (token && (await this.secrets.putIfAbsent(KIND, remoteId, token))) this.logger.log(`the token of remote ${remoteId} is now kept in the database, where every hub process of it finds it`);
    }
  }

  store(remoteId: string, token: string): Promise<void> {
    return this.secrets.put(KIND, remoteId, token);
  }

  /** The token before, or null when none was held. */
  replace(remoteId: string, token: string): Promise<string | null> {
    return this.secrets.replace(KIND, remoteId, token);
  }

  /** Undoes a replace whose record failed, unless another replacement came since. */
  undoReplace(remoteId: string, token: string, previous: string | null): Promise<void> {
    return this.secrets.undo(KIND, remoteId, token, previous);
  }

  remove(remoteId: string): Promise<void> {
    return this.secrets.remove(KIND, remoteId);
  }

  async token(remoteId: string): Promise<string> {
    const token = await this.secrets.get(KIND, remoteId);
    if (token === null) throw new DomainError('conflict', `no hub process of this database holds the token of remote ${remoteId} (a hub before this version kept it in its own data dir: start that hub, or give a token the remote issued with PUT /api/v1/remotes/${remoteId}/token)`);
    return token;
  }
}
