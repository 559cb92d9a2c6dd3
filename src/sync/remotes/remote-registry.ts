import { Injectable } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { createHash, randomUUID } from 'node:crypto';
import { DomainError } from '../../eventing/domain-error';
import { CommandGateway } from '../../projection-runner/command-gateway';
import { RemoteConnection } from '../adapters/remote-connection';
import { RegisterRemoteCommand } from './commands/register-remote.command';
import { ReplaceRemoteTokenCommand } from './commands/replace-remote-token.command';
import { GetRemoteQuery } from '../queries/remotes.query';
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
    private readonly queries: QueryBus,
  ) {}

  async register(input: { name: string; url: string; token: string; fingerprint: string }) {
    const match = SSH_URL.exec(input.url)!;
    const host = match[1].replace(/^\[|\]$/g, '');
    const port = match[2] ? Number(match[2]) : DEFAULT_SSH_PORT;
    if (port < 1 || port > 65535) throw new DomainError('invalid', `url names port ${port}: a port is 1-65535`);
    const hubInstance = await this.answering({ host, port, fingerprint: input.fingerprint }, input.token, input.url);
    const remoteId = randomUUID();
    await this.tokens.store(remoteId, input.token);
    const remote = { remoteId, name: input.name, url: input.url, host, port, fingerprint: input.fingerprint, hubInstance, tokenSha256: sha256(input.token) };
    try {
      await this.gateway.execute(new RegisterRemoteCommand(remote), 'remotes');
    } catch (error) {
      // the refusal is what the operator reads, not a failure to tidy up after it
      await this.tokens.remove(remoteId).catch(() => undefined);
      throw error;
    }
    const { tokenSha256: _secretish, ...shown } = remote;
    return shown;
  }

  /**
   * Gives a registered remote another token it issued: after the first was revoked there, or lost with the data dir
   * of a hub that kept it in a file. Checked as a registration is, and the remote must still be the hub registered.
   */
  async replaceToken(remoteId: string, token: string) {
    const record = await this.queries.execute(new GetRemoteQuery(remoteId));
    const hubInstance = await this.answering(record, token, record.url);
    if (hubInstance !== record.hubInstance) throw new DomainError('invalid', `the hub at ${record.url} states instance ${hubInstance}, not ${record.hubInstance}, the hub registered as remote ${remoteId}`);
    const previous = await this.tokens.replace(remoteId, token);
    try {
      await this.gateway.execute(new ReplaceRemoteTokenCommand(remoteId, sha256(token)), 'remotes');
    } catch (error) {
      await this.tokens.undoReplace(remoteId, token, previous).catch(() => undefined);
      throw error;
    }
    return this.queries.execute(new GetRemoteQuery(remoteId));
  }

  /** The remote's instance, once it answered with the pinned host key, took the token, said its role is sync, and stated the same key. */
  private async answering(at: { host: string; port: number; fingerprint: string }, token: string, url: string): Promise<string> {
    let connection: RemoteConnection;
    try {
      connection = await RemoteConnection.open(at, token);
    } catch (error) {
      throw new DomainError('invalid', `the remote hub at ${url} cannot be used: ${(error as Error).message}`);
    }
    try {
      const [session, identity] = await Promise.all([connection.session(), connection.identity()]);
      if (session.role !== 'sync') throw new DomainError('invalid', `the token's role on the remote hub is ${session.role}: issue one with role sync there (POST /api/v1/tokens {"name": ..., "role": "sync"})`);
      if (identity.ssh.hostKeyFingerprint !== at.fingerprint) throw new DomainError('invalid', `the remote hub states host key ${identity.ssh.hostKeyFingerprint}, not ${at.fingerprint}`);
      // the remote's own name for itself goes into an event and the read model: an identifier, or nothing is registered
      if (!isSafeIdentifier(identity.hubInstance)) throw new DomainError('invalid', `the remote hub states its instance as ${shownId(identity.hubInstance)}, not an identifier`);
      return identity.hubInstance;
    } catch (error) {
      throw error instanceof DomainError ? error : new DomainError('invalid', `the remote hub at ${url} did not answer as a Sendense hub: ${(error as Error).message}`);
    } finally {
      await connection.close();
    }
  }
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
