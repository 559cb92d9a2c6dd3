import { DomainEvent } from '../../eventing/aggregate';

export const REMOTE_REGISTERED = 'RemoteRegistered';
export const REMOTE_TOKEN_REPLACED = 'RemoteTokenReplaced';

/**
 * Another hub this hub pulls restore points from, as registered: where its SSH endpoint is and the host key
 * fingerprint it is pinned to. The token it gave stays out of the event: it lives in the database's hub_secrets
 * (RemoteTokens); `tokenSha256` tells which token that was without revealing it.
 */
export type RemoteRegistered = DomainEvent<
  typeof REMOTE_REGISTERED,
  { remoteId: string; name: string; url: string; host: string; port: number; fingerprint: string; hubInstance: string; tokenSha256: string }
>;
/** The remote's token replaced by another it issued (the first revoked there, or lost with a hub's data dir). */
export type RemoteTokenReplaced = DomainEvent<typeof REMOTE_TOKEN_REPLACED, { remoteId: string; tokenSha256: string }>;
export type RemoteEvent = RemoteRegistered | RemoteTokenReplaced;

export const REMOTE_STREAM_PREFIX = 'remote-';
export const remoteStream = (remoteId: string) => `${REMOTE_STREAM_PREFIX}${remoteId}`;
