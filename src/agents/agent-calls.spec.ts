import { HttpException } from '@nestjs/common';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { DomainError } from '../eventing/domain-error';
import { AgentCalls } from './agent-calls';
import type { AgentTunnel } from './agent-tunnel.service';

const AGENT = '1b2c3d4e-1111-4222-8333-444455556666';
const STATUS = { not_found: 404, conflict: 409, invalid: 400 } as const;

/** The status the hub's API answers for what a call threw (DomainErrorFilter for a DomainError, Nest's own for an HttpException), and its message. */
function answer(error: unknown): { status: number; message: string } {
  if (error instanceof DomainError) return { status: STATUS[error.kind], message: error.message };
  if (error instanceof HttpException) return { status: error.getStatus(), message: error.message };
  return { status: 500, message: String(error) };
}

/** A real HTTP server in the agent's place, answering every request with the next status and body. */
describe("the hub's calls to an agent: the agent's refusal is the caller's 4xx with its words, its failure or silence a 502/503 naming it, never a bare 500", () => {
  let server: Server;
  let base = '';
  let reply: { status: number; body: string } = { status: 200, body: '{}' };

  beforeAll(async () => {
    server = createServer((_req, res) => res.writeHead(reply.status, { 'Content-Type': 'application/json' }).end(reply.body));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const calls = (agentApiUrl: () => Promise<string> = async () => base) => new AgentCalls({ agentApiUrl } as unknown as AgentTunnel);
  const check = (c = calls()) => c.checkRestore(AGENT, {} as never).then(() => ({ status: 200, message: '' }), answer);

  it.each([
    [400, 400, 'target.storageDir must be a string'],
    [404, 404, "VM vm-1 is not a domain of this agent's libvirt (qemu:///system): restore the point as a new domain"],
    [409, 409, 'domain web is running: shut it off before its disks are replaced'],
    [422, 422, 'storageDir /srv/x does not exist: a restore writes into an existing directory and creates none'],
  ])('the agent answering %i is %i to the caller, with the agent\'s message', async (status, expected, message) => {
    reply = { status, body: JSON.stringify({ statusCode: status, message }) };
    expect(await check()).toEqual({ status: expected, message });
  });

  it.each([
    [500, 'virsh domstate web: failed to connect to the hypervisor'],
    [413, 'request body too large'],
  ])('the agent answering %i is a 502 naming the agent, the call and its message', async (status, message) => {
    reply = { status, body: JSON.stringify({ statusCode: status, message }) };
    expect(await check()).toEqual({ status: 502, message: `agent ${AGENT} answered ${status} to /api/v1/restore/check: ${message}` });
  });

  it('an agent whose API does not answer is a 503 saying so; one without a session keeps its 409', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const refused = await check(calls(async () => `http://127.0.0.1:${port}`));
    expect(refused).toEqual({ status: 503, message: expect.stringMatching(new RegExp(`^agent ${AGENT} did not answer /api/v1/restore/check: fetch failed \\(.*ECONNREFUSED`)) });
    const noApi = await check(calls(() => Promise.reject(new Error('the agent API did not come up within 5000 ms'))));
    expect(noApi).toEqual({ status: 503, message: `agent ${AGENT} could not be reached for /api/v1/restore/check: the agent API did not come up within 5000 ms` });
    const noSession = await check(calls(() => Promise.reject(new DomainError('conflict', `agent ${AGENT} is not connected`))));
    expect(noSession).toEqual({ status: 409, message: `agent ${AGENT} is not connected` });
  });
});
