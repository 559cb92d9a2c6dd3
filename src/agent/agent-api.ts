import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import type { BackupSource } from './sources/backup-source';
import { BackupRunner } from './backup-runner';
import { parseRestoreRequest, RestoreRequestError } from './restore-request.parse';
import { Refusal } from './refusal';
import type { RestoreRunner } from './restore-runner';
import { RestoreConflict } from './sources/libvirt/libvirt-restorer';
import { PlanRequest, SinceDisk, StartRequest, VALID_CORRELATION_ID, VALID_EVENT_ID } from '../wire/backup-protocol';

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const MAX_BODY = 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The agent's API. It listens on loopback only; the hub reaches it through the
 * reverse forward of the agent's own SSH connection.
 */
export class AgentApi {
  private server?: Server;

  constructor(
    private readonly source: BackupSource,
    private readonly runner: BackupRunner,
    private readonly restores: RestoreRunner,
  ) {}

  async listen(): Promise<number> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = (req.url ?? '').split('?')[0];
      const cancel = /^\/api\/v1\/backup\/([^/]+)\/cancel$/.exec(path);
      const job = /^\/api\/v1\/backup\/([^/]+)$/.exec(path);
      const cancelRestore = /^\/api\/v1\/restore\/([^/]+)\/cancel$/.exec(path);
      if (req.method === 'GET' && path === '/api/v1/vms') return send(res, 200, await this.source.listVms().catch(() => this.source.scanInventory().then((s) => s.vms)));
      if (req.method === 'POST' && path === '/api/v1/backup/plan') return send(res, 200, await this.runner.plan(parsePlan(await readJson(req))));
      if (req.method === 'POST' && path === '/api/v1/backup/start') {
        this.runner.start(parseStart(await readJson(req)));
        return send(res, 202, { accepted: true });
      }
      // the hub asks while it waits for the job's last report: a job this agent no longer runs will send none
      if (req.method === 'GET' && job) {
        if (!ID.test(job[1])) throw new HttpError(400, 'jobId is malformed');
        return send(res, 200, { running: this.runner.isRunning(job[1]) });
      }
      if (req.method === 'POST' && cancel) {
        if (!ID.test(cancel[1])) throw new HttpError(400, 'jobId is malformed');
        return send(res, 202, { cancelled: this.runner.cancel(cancel[1]) });
      }
      if (req.method === 'POST' && (path === '/api/v1/restore/check' || path === '/api/v1/restore/start')) {
        const body = await readJson(req);
        const start = path.endsWith('/start');
        const request = restoreRequest(() => (start ? parseRestoreRequest(body, true) : parseRestoreRequest(body, false)));
        await this.restores.check(request);
        if (!start) return send(res, 200, { ok: true });
        try {
          this.restores.start(request as ReturnType<typeof parseRestoreRequest>);
        } catch (e) {
          throw new HttpError(e instanceof RestoreConflict ? 409 : 400, (e as Error).message);
        }
        return send(res, 202, { accepted: true });
      }
      if (req.method === 'POST' && cancelRestore) {
        if (!ID.test(cancelRestore[1])) throw new HttpError(400, 'restoreId is malformed');
        return send(res, 202, { cancelled: this.restores.cancel(cancelRestore[1]) });
      }
      throw new HttpError(404, `no route ${req.method} ${path}`);
    } catch (error) {
      // what this host cannot take now (a restore's target, a VM still copying) is the request's 4xx, in the agent's
      // words; anything else (libvirt not answering) is this agent's 500
      const status = error instanceof HttpError || error instanceof Refusal ? error.status : error instanceof RestoreConflict ? 409 : 500;
      send(res, status, { statusCode: status, message: error instanceof Error ? error.message : String(error) });
    }
  }
}

function restoreRequest<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof RestoreRequestError) throw new HttpError(400, error.message);
    throw error;
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, 'request body too large');
    chunks.push(chunk as Buffer);
  }
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error();
    return body;
  } catch {
    throw new HttpError(400, 'request body must be a JSON object');
  }
}

function id(value: unknown, field: string, nullable = false): string {
  if (nullable && value === null) return null as unknown as string;
  if (typeof value !== 'string' || !ID.test(value)) throw new HttpError(400, `${field} must be 1-128 characters of A-Z a-z 0-9 . _ -`);
  return value;
}

const PSK_IDENTITY = /^[A-Za-z0-9._-]{1,64}$/;
const PSK_KEY = /^(?:[0-9a-f]{2}){32,64}$/;

function parsePlan(body: Record<string, unknown>): PlanRequest {
  const sincePointId = id(body.sincePointId ?? null, 'sincePointId', true);
  return { vmId: id(body.vmId, 'vmId'), sincePointId, ...sinceDisks(body.sinceDisks, sincePointId) };
}

function sinceDisks(value: unknown, sincePointId: string | null): { sinceDisks?: SinceDisk[] } {
  if (value === undefined) return {};
  if (sincePointId === null) throw new HttpError(400, 'sinceDisks needs a sincePointId');
  if (!Array.isArray(value) || value.length > 256) throw new HttpError(400, 'sinceDisks must be an array of at most 256 disks');
  return {
    sinceDisks: value.map((d: { diskId?: unknown; virtualSize?: unknown; changeRef?: unknown }) => {
      if (typeof d !== 'object' || d === null) throw new HttpError(400, 'sinceDisks[] must be objects');
      if (typeof d.virtualSize !== 'number' || !Number.isSafeInteger(d.virtualSize) || d.virtualSize < 0) throw new HttpError(400, 'sinceDisks[].virtualSize must be a byte count');
      if (d.changeRef !== null && (typeof d.changeRef !== 'string' || d.changeRef.length > 256)) throw new HttpError(400, 'sinceDisks[].changeRef must be a string of at most 256 characters or null');
      return { diskId: id(d.diskId, 'diskId'), virtualSize: d.virtualSize, changeRef: d.changeRef };
    }),
  };
}

function parseStart(body: Record<string, unknown>): StartRequest {
  if (body.type !== 'full' && body.type !== 'incremental') throw new HttpError(400, 'type must be full or incremental');
  if (!Array.isArray(body.disks) || body.disks.length === 0) throw new HttpError(400, 'disks must be a non-empty array');
  const disks = body.disks.map((d: { diskId?: unknown; known?: unknown; nbd?: { port?: unknown; exportName?: unknown; psk?: { identity?: unknown; key?: unknown } } }) => {
    const port = d?.nbd?.port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw new HttpError(400, 'disks[].nbd.port must be a TCP port');
    if (typeof d.nbd?.exportName !== 'string' || d.nbd.exportName.length > 256) throw new HttpError(400, 'disks[].nbd.exportName must be a string');
    const { identity, key } = d.nbd.psk ?? {};
    if (typeof identity !== 'string' || !PSK_IDENTITY.test(identity) || typeof key !== 'string' || !PSK_KEY.test(key)) {
      throw new HttpError(400, 'disks[].nbd.psk must be { identity, key } with key as 64-128 hex digits');
    }
    if (d.known !== undefined && typeof d.known !== 'boolean') throw new HttpError(400, 'disks[].known must be a boolean');
    return { diskId: id(d.diskId, 'diskId'), nbd: { port, exportName: d.nbd.exportName, psk: { identity, key } }, ...(d.known ? { known: true } : {}) };
  });
  if (typeof body.correlationId !== 'string' || !VALID_CORRELATION_ID.test(body.correlationId)) throw new HttpError(400, 'correlationId must be 1-128 characters of A-Z a-z 0-9 . _ : -');
  if (typeof body.causationId !== 'string' || !VALID_EVENT_ID.test(body.causationId)) throw new HttpError(400, 'causationId must be an event id (a lowercase UUID)');
  return {
    jobId: id(body.jobId, 'jobId'),
    correlationId: body.correlationId,
    causationId: body.causationId,
    vmId: id(body.vmId, 'vmId'),
    type: body.type,
    restorePointId: id(body.restorePointId, 'restorePointId'),
    sincePointId: id(body.sincePointId ?? null, 'sincePointId', true),
    ...sinceDisks(body.sinceDisks, (body.sincePointId as string | undefined) ?? null),
    disks,
  };
}
