import { Query } from '@nestjs/cqrs';

export interface RemoteRecord {
  remoteId: string;
  name: string;
  url: string;
  host: string;
  port: number;
  fingerprint: string;
  hubInstance: string;
  registeredAt: Date;
}

export class ListRemotesQuery extends Query<RemoteRecord[]> {}

/** 404 when there is no such remote. */
export class GetRemoteQuery extends Query<RemoteRecord> {
  constructor(readonly remoteId: string) {
    super();
  }
}

/** Whether a remote already has this name. */
export class RemoteNameTakenQuery extends Query<boolean> {
  constructor(readonly name: string) {
    super();
  }
}
