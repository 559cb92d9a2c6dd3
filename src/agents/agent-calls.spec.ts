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

  describe("the agent's plan names the files the hub creates and exports writable: a plan that is not one is a 502 naming the agent, and nothing of it is used", () => {
    const disk = { diskId: 'vda', virtualSize: 1 << 20, format: 'qcow2' };
    const plan = (body: unknown) => {
      reply = { status: 200, body: JSON.stringify(body) };
      return calls()
        .plan(AGENT, { vmId: 'vm1', sincePointId: null })
        .then((value) => ({ status: 200, value }), answer);
    };

    it('a valid plan comes back as the agent sent it, with only the fields the hub uses', async () => {
      const sent = { mode: 'full', reason: 'no earlier restore point in this chain', chainBroken: true, disks: [disk, { diskId: 'disk-2000', virtualSize: 0, format: 'raw', extra: '/etc' }], other: 1 };
      expect(await plan(sent)).toEqual({ status: 200, value: { mode: 'full', reason: 'no earlier restore point in this chain', chainBroken: true, disks: [disk, { diskId: 'disk-2000', virtualSize: 0, format: 'raw' }] } });
      expect(await plan({ mode: 'incremental', reason: null, disks: [disk] })).toEqual({ status: 200, value: { mode: 'incremental', reason: null, disks: [disk] } });
    });

    it("the disks the agent cannot read come back with their reasons (cut at 1000 characters), to be recorded with the job's point", async () => {
      const leftOut = [{ diskId: 'vdb', reason: "type='network' disks are not supported (only file-backed images)", extra: 1 }, { diskId: 'Hard disk 2', reason: 'x'.repeat(5000) }];
      expect(await plan({ mode: 'full', reason: null, disks: [disk], leftOut })).toEqual({
        status: 200,
        value: { mode: 'full', reason: null, disks: [disk], leftOut: [{ diskId: 'vdb', reason: leftOut[0].reason }, { diskId: 'Hard disk 2', reason: 'x'.repeat(1000) }] },
      });
      expect(await plan({ mode: 'full', reason: null, disks: [disk], leftOut: [] })).toEqual({ status: 200, value: { mode: 'full', reason: null, disks: [disk] } });
      // what would drive an operator's terminal (an escape sequence, a carriage return) is not passed on
      const hostile = await plan({ mode: 'full', reason: null, disks: [disk], leftOut: [{ diskId: 'vdb', reason: 'ok\u001b]0;owned\u0007\rfine\u2028' }] });
      expect(hostile).toEqual({ status: 200, value: { mode: 'full', reason: null, disks: [disk], leftOut: [{ diskId: 'vdb', reason: 'ok?]0;owned??fine?' }] } });
    });

    it.each([
      ['a disk id that climbs out of the repository', { diskId: '../../../../var/lib/sendense/repositories/B/chunks/points/v/p/d' }, 'disks[0].diskId "../../../../var/lib/sendense/repositories/B/chunks/points/v/p/d" is not a valid identifier'],
      ["a disk id that is another VM's directory", { diskId: '../victim' }, 'disks[0].diskId "../victim" is not a valid identifier'],
      ['a disk id with a slash', { diskId: 'a/b' }, 'disks[0].diskId "a/b" is not a valid identifier'],
      ['a disk id that is not a string', { diskId: 7 }, 'disks[0].diskId number is not a valid identifier'],
      ['a size that is not a whole number of bytes', { virtualSize: 1.5 }, 'disks[0].virtualSize must be a whole number of bytes, 0 or more'],
      ['a negative size', { virtualSize: -1 }, 'disks[0].virtualSize must be a whole number of bytes, 0 or more'],
      ['a format the hub does not know', { format: 'vmdk' }, 'disks[0].format must be qcow2 or raw'],
    ])('%s', async (_what, change, message) => {
      const refused = await plan({ mode: 'full', reason: null, disks: [{ ...disk, ...change }] });
      expect(refused.status).toBe(502);
      expect((refused as { message: string }).message).toContain(`agent ${AGENT} answered /api/v1/backup/plan with an invalid plan: ${message}`);
    });

    it.each([
      ['not an object', [disk], 'it is not an object'],
      ['no mode', { reason: null, disks: [disk] }, 'mode must be full or incremental'],
      ['a reason that is not text', { mode: 'full', reason: { x: 1 }, disks: [disk] }, 'reason must be a string or null'],
      ['chainBroken that is not a boolean', { mode: 'full', reason: null, chainBroken: 'yes', disks: [disk] }, 'chainBroken must be a boolean'],
      ['no disks', { mode: 'full', reason: null, disks: [] }, 'disks must list 1 to 256 disks'],
      ['257 disks', { mode: 'full', reason: null, disks: Array.from({ length: 257 }, (_, i) => ({ ...disk, diskId: `d${i}` })) }, 'disks must list 1 to 256 disks'],
      ['one disk twice', { mode: 'full', reason: null, disks: [disk, disk] }, 'disks[1].diskId vda is listed twice'],
      ['disks left out that are not a list', { mode: 'full', reason: null, disks: [disk], leftOut: 'vdb' }, 'leftOut must list at most 256 disks'],
      ['a disk left out with a control character in its name', { mode: 'full', reason: null, disks: [disk], leftOut: [{ diskId: 'vd\nb', reason: 'r' }] }, 'leftOut[0].diskId must be 1-128 printable characters'],
      ['a disk left out with a 129-character name', { mode: 'full', reason: null, disks: [disk], leftOut: [{ diskId: 'v'.repeat(129), reason: 'r' }] }, 'leftOut[0].diskId must be 1-128 printable characters'],
      ['a disk left out without a reason', { mode: 'full', reason: null, disks: [disk], leftOut: [{ diskId: 'vdb' }] }, 'leftOut[0].reason must be a non-empty string'],
      ['a disk left out whose name turns text around', { mode: 'full', reason: null, disks: [disk], leftOut: [{ diskId: 'vdb\u202e', reason: 'r' }] }, 'leftOut[0].diskId must be 1-128 printable characters'],
    ])('%s', async (_what, body, message) => {
      expect(await plan(body)).toEqual({ status: 502, message: `agent ${AGENT} answered /api/v1/backup/plan with an invalid plan: ${message}` });
    });
  });

  it('asks whether the agent still runs a job; an answer that does not say is a 502 naming the agent', async () => {
    const job = '7c1e9a52-1111-4222-8333-444455556666';
    const running = () => calls().backupRunning(AGENT, job).then((value) => ({ status: 200, value }), answer);
    reply = { status: 200, body: '{"running":true}' };
    expect(await running()).toEqual({ status: 200, value: true });
    reply = { status: 200, body: '{"running":false}' };
    expect(await running()).toEqual({ status: 200, value: false });
    reply = { status: 200, body: '{"running":"no"}' };
    expect(await running()).toEqual({ status: 502, message: `agent ${AGENT} answered /api/v1/backup/${job} without saying whether it runs the job` });
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
