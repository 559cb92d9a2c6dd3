export class AllocateNbdPortCommand {
  constructor(
    readonly jobId: string,
    readonly diskId: string,
  ) {}
}

export class ReleaseNbdPortCommand {
  constructor(
    readonly port: number,
    readonly reason: string,
    readonly leaseId?: string,
  ) {}
}

export class ReleaseJobPortsCommand {
  constructor(
    readonly jobId: string,
    readonly reason: string,
  ) {}
}
