import type { Duplex } from 'node:stream';
import { connect as tlsConnect, TLSSocket } from 'node:tls';
import { NbdConnectionClosedError } from './errors';

/** A TLS pre-shared key as qemu's tls-creds-psk reads it from keys.psk: `identity:hexkey`. */
export interface NbdPsk {
  identity: string;
  /** The key as hex, 32 bytes and more. */
  key: string;
}

/**
 * TLS 1.3 with an external PSK: both ends prove they hold the key, and the (EC)DHE exchange of the
 * handshake gives each connection its own keys (forward secrecy). AES-GCM only: the CPU has AES-NI,
 * and gnutls, left to choose, may take ChaCha20, which measured 16x slower here (0.32 vs 5 GB/s).
 */
export function pskStartTls(psk: NbdPsk, timeoutMs = 10_000): (plain: Duplex) => Promise<Duplex> {
  const key = Buffer.from(psk.key, 'hex');
  return (plain) =>
    new Promise((resolve, reject) => {
      const socket = tlsConnect({
        socket: plain,
        minVersion: 'TLSv1.3',
        maxVersion: 'TLSv1.3',
        ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384',
        pskCallback: () => ({ identity: psk.identity, psk: key }),
        // The PSK authenticates the server; there is no certificate to check.
        checkServerIdentity: () => undefined,
      });
      const timer = setTimeout(() => fail(new Error(`no TLS handshake within ${timeoutMs} ms`)), timeoutMs);
      const fail = (error: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new NbdConnectionClosedError(`TLS with the NBD server failed: ${error.message}`, error));
      };
      socket.once('error', fail);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.off('error', fail);
        socket.setNoDelay(true);
        writeLargeBuffersAlone(socket);
        resolve(socket);
      });
    });
}

/** A chunk at least this long is encrypted from where it lies instead of being copied next to its neighbours. */
const COPY_LIMIT = 64 * 1024;

type WriteCallback = (error?: Error | null) => void;
type Chunk = { chunk: Buffer | string; encoding: BufferEncoding };
type Writev = (this: TLSSocket, chunks: Chunk[], callback: WriteCallback) => void;

/**
 * Node's TLS socket hands a write of several buffers (what a cork collects, an NBD header and its payload, or
 * what the stream queues while a write is in progress) to OpenSSL as ONE buffer: it allocates one and copies
 * every buffer into it before encrypting; a single buffer is encrypted where it lies. For a copy's 4 MiB WRITE
 * payloads that copy was a third of what node spent sending over TLS (`npm run bench -- tls-send`). So a batch
 * holding a large buffer goes out as consecutive writes, each large buffer alone and each run of small ones
 * (headers) copied together. The bytes leave in the same order; a header then travels in a TLS record of its
 * own rather than at the front of its payload's first one.
 */
function writeLargeBuffersAlone(socket: TLSSocket): void {
  const stream = socket as unknown as { _writev: Writev; _write: (chunk: Buffer, encoding: string, callback: WriteCallback) => void };
  const writev = stream._writev;
  stream._writev = function (chunks, callback) {
    if (chunks.some((c) => typeof c.chunk === 'string') || !chunks.some((c) => c.chunk.length >= COPY_LIMIT)) {
      writev.call(this, chunks, callback);
      return;
    }
    const parts: Buffer[] = [];
    let small: Buffer[] = [];
    for (const { chunk } of chunks as { chunk: Buffer }[]) {
      if (chunk.length < COPY_LIMIT) {
        small.push(chunk);
        continue;
      }
      if (small.length) parts.push(small.length === 1 ? small[0] : Buffer.concat(small));
      small = [];
      parts.push(chunk);
    }
    if (small.length) parts.push(small.length === 1 ? small[0] : Buffer.concat(small));
    let next = 0;
    const writeNext = (error?: Error | null) => {
      if (error || next === parts.length) callback(error);
      else stream._write.call(this, parts[next++], 'buffer', writeNext);
    };
    writeNext();
  };
}
