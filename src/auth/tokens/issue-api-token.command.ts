export class IssueApiTokenCommand {
  constructor(readonly name: string) {}
}
