import { Injectable } from '@nestjs/common';
import { createHash, randomUUID } from 'node:crypto';
import { DomainError } from '../../eventing/domain-error';
import { CommandGateway } from '../../projection-runner/command-gateway';
import { RemoteConnection } from '../adapters/remote-connection';
import { RegisterRemoteCommand } from './commands/register-remote.command';
import { RemoteTokens } from './remote-tokens';
import { SSH_URL } from './remotes.dto';
import { isSafeIdentifier } from '../../wire/identifiers';
import { shownId } from '../remote-points';

const DEFAULT_SSH_PORT = 2222;

/**
 * Registers a remote only once it answered as the operator said it would: its host key is the pinned one (checked
 * before the token is sent), the token logs in, its role is sync, and the identity it states carries that key.
 */
@Injectable()
export class RemoteRegistry {
  constructor(
    private readonly gateway: CommandGateway,
    private readonly tokens: RemoteTokens,
  ) {}

  async register(input: { name: string; url: string; token: string; fingerprint: string }) {
    const match = SSH_URL.exec(input.url)!;
    const host = match[1].replace(/^\[|\]$/g, '');
    const port = match[2] ? Number(match[2]) : DEFAULT_SSH_PORT;
    if (port < 1 || port > 65535) throw new DomainError('invalid', `url names port ${port}: a port is 1-65535`);
    let connection: RemoteConnection;
    try {
      connection = await RemoteConnection.open({ host, port, fingerprint: input.fingerprint }, input.token);
    } catch (error) {
      throw new DomainError('invalid', `the remote hub at ${input.url} cannot be used: ${(error as Error).message}`);
    }
    let hubInstance: string;
    try {
      const [session, identity] = await Promise.all([connection.session(), connection.identity()]);
      if (session.role !== 'sync') throw new DomainError('invalid', `the token's role on the remote hub is ${session.role}: issue one with role sync there (POST /api/v1/tokens {"name": ..., "role": "sync"})`);
      if (identity.ssh.hostKeyFingerprint !== input.fingerprint) throw new DomainError('invalid', `the remote hub states host key ${identity.ssh.hostKeyFingerprint}, not ${input.fingerprint}`);
      // the remote's own name for itself goes into an event and the read model: an identifier, or nothing is registered
      if (!isSafeIdentifier(identity.hubInstance)) throw new DomainError('invalid', `the remote hub states its instance as ${shownId(identity.hubInstance)}, not an identifier`);
      hubInstance = identity.hubInstance;
    } catch (error) {
      throw error instanceof DomainError ? error : new DomainError('invalid', `the remote hub at ${input.url} did not answer as a Sendense hub: ${(error as Error).message}`);
    } finally {
      await connection.close();
    }
    const remoteId = randomUUID();
    await this.tokens.store(remoteId, input.token);
    const remote = { remoteId, name: input.name, url: input.url, host, port, fingerprint: input.fingerprint, hubInstance, tokenSha256: createHash('sha256').update(input.token).digest('hex') };
    try {
      await this.gateway.execute(new RegisterRemoteCommand(remote), 'remotes');
    } catch (error) {
      await this.tokens.remove(remoteId);
      throw error;
    }
    const { tokenSha256: _secretish, ...shown } = remote;
    return shown;
  }
}
