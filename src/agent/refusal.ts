/**
 * A request this host cannot take, found before anything is made: the agent answers the hub with `status` and the
 * message, and the hub passes both on to whoever asked (src/agents/agent-calls.ts).
 * 404: what the request names is not on this host; 409: it is, in a state that cannot take the request now;
 * 422: where a restore would write cannot take it.
 */
export class Refusal extends Error {
  constructor(
    readonly status: 404 | 409 | 422,
    message: string,
  ) {
    super(message);
  }
}
