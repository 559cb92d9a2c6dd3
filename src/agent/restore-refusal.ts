/**
 * A restore this host cannot take, found before anything is made: the agent answers the hub's check with
 * `status` and the message, and the hub passes both on to whoever asked (src/agents/agent-calls.ts).
 * 404: the target the request names is not on this host; 409: it is, in a state that cannot take the restore;
 * 422: where the restore would write cannot take it.
 */
export class RestoreRefusal extends Error {
  constructor(
    readonly status: 404 | 409 | 422,
    message: string,
  ) {
    super(message);
  }
}
