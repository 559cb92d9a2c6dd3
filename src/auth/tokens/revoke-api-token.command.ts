export class RevokeApiTokenCommand {
  constructor(readonly tokenId: string) {}
}
