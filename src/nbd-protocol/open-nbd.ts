import { connect as netConnect, Socket } from 'node:net';
import { NbdClient, NbdClientOptions } from './nbd-client';
import { DirectReadHooks, kNbdDirectRead } from './direct-read';
import { NbdConnectionClosedError } from './errors';
import { NbdAddress, parseNbdUri } from './nbd-uri';

export interface OpenNbdOptions extends Omit<NbdClientOptions, 'exportName'> {
  /** Give up connecting (TCP connect or Unix socket) after this long (default 10 s). */
  connectTimeoutMs?: number;
  /**
   * A server that may still be starting: a refused connection is tried again every 5 ms for up to this long. A
   * backup's agent is handed its export's port as the export starts, and takes its snapshot meanwhile.
   */
  refusedRetryMs?: number;
  /** Ends the retries of a refused connection (the job was cancelled). */
  signal?: AbortSignal;
}

const REFUSED_RETRY_DELAY_MS = 5;

/** Bytes read per system call into one reused buffer while no client has taken over the reads. */
const READ_BUFFER_SIZE = 64 * 1024;

/**
 * Opens a socket to an address (TCP with TCP_NODELAY, or a Unix socket) once it
 * is connected. Reads use net's `onread` with a buffer generator: until an
 * NbdClient installs its hooks (see direct-read.ts), bytes land in one reused
 * buffer and are re-emitted as 'data' events whose Buffers are valid only
 * during the event; afterwards the client decides where each read goes, so
 * READ data is received straight into its destination. Either way no Buffer is
 * allocated per read.
 */
export function connectSocket(address: NbdAddress, timeoutMs = 10_000): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const scratch = Buffer.allocUnsafe(READ_BUFFER_SIZE);
    let hooks: DirectReadHooks | undefined;
    const onread = {
      buffer: (): Uint8Array => (hooks ? hooks.nextBuffer() : scratch),
      callback: (nread: number, buf: Uint8Array): boolean => {
        if (hooks) hooks.onRead(nread, buf);
        else socket.emit('data', Buffer.from(buf.buffer, buf.byteOffset, nread));
        return true;
      },
    };
    const socket =
      address.transport === 'tcp'
        ? netConnect({ host: address.host, port: address.port, noDelay: true, onread })
        : netConnect({ path: address.socketPath, onread });
    Object.defineProperty(socket, kNbdDirectRead, { value: { install: (h: DirectReadHooks | undefined) => (hooks = h) } });
    const where = address.transport === 'tcp' ? `${address.host}:${address.port}` : address.socketPath;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new NbdConnectionClosedError(`could not connect to NBD server at ${where} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (error: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new NbdConnectionClosedError(`could not connect to NBD server at ${where}: ${error.message}`, error));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** Connects to `nbd://host:port/export` or `nbd+unix:///export?socket=PATH` and completes the handshake. */
export async function openNbd(uri: string | NbdAddress, options: OpenNbdOptions = {}): Promise<NbdClient> {
  const address = typeof uri === 'string' ? parseNbdUri(uri) : uri;
  const { connectTimeoutMs, refusedRetryMs = 0, signal, ...client } = options;
  const deadline = performance.now() + refusedRetryMs;
  for (;;) {
    signal?.throwIfAborted();
    const socket = await connectSocket(address, connectTimeoutMs).catch((error: NbdConnectionClosedError) => {
      const refused = (error.reason as NodeJS.ErrnoException | undefined)?.code === 'ECONNREFUSED';
      if (refused && performance.now() < deadline) return null;
      throw error;
    });
    if (socket) return NbdClient.connect(socket, { ...client, exportName: address.exportName });
    await new Promise((resolve) => setTimeout(resolve, REFUSED_RETRY_DELAY_MS));
  }
}
