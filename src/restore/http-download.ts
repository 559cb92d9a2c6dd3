import { Transform, TransformCallback } from 'node:stream';

export type RangeAnswer =
  /** No Range header (or one we may ignore): send the whole file with 200. */
  | { kind: 'full' }
  /** One satisfiable range: 206 with these inclusive byte positions. */
  | { kind: 'partial'; start: number; end: number }
  /** 416 with `Content-Range: bytes * /size`. */
  | { kind: 'unsatisfiable'; reason: string };

/**
 * A single `bytes=` range (RFC 9110 §14.1.2): `first-last`, `first-` or
 * `-suffixLength`. Several ranges are answered with the whole file (a
 * server may ignore Range), other units too. A `bytes=` range that is
 * malformed or lies beyond the end of the file is unsatisfiable: a client
 * asking for it wants something this file does not have.
 */
export function parseRange(header: string | undefined, size: number): RangeAnswer {
  if (header === undefined) return { kind: 'full' };
  const match = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (!match) return { kind: 'full' };
  const specs = match[1].split(',').map((s) => s.trim()).filter(Boolean);
  if (specs.length > 1) return { kind: 'full' };
  const spec = /^(\d*)-(\d*)$/.exec(specs[0] ?? '');
  if (!spec || (spec[1] === '' && spec[2] === '')) return { kind: 'unsatisfiable', reason: `malformed range ${JSON.stringify(header)}` };
  if (size === 0) return { kind: 'unsatisfiable', reason: 'the file is empty' };
  if (spec[1] === '') {
    const suffix = Number(spec[2]);
    if (suffix === 0) return { kind: 'unsatisfiable', reason: 'a suffix range of 0 bytes selects nothing' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(spec[1]);
  const end = spec[2] === '' ? size - 1 : Math.min(Number(spec[2]), size - 1);
  if (!Number.isSafeInteger(start) || start >= size) return { kind: 'unsatisfiable', reason: `the range starts at ${spec[1]}, beyond the last byte (${size - 1})` };
  if (spec[2] !== '' && Number(spec[2]) < start) return { kind: 'unsatisfiable', reason: `the range ends (${spec[2]}) before it starts (${spec[1]})` };
  return { kind: 'partial', start, end };
}

/**
 * `attachment` with the name twice: an ASCII fallback for old clients and
 * the exact UTF-8 name as RFC 8187 `filename*`, which every current browser,
 * curl -J and wget use.
 */
export function contentDisposition(fileName: string): string {
  const fallback = fileName.replace(/[^\x20-\x7e]|["\\%]/g, '_') || 'download';
  const encoded = encodeURIComponent(fileName).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

/** Passes bytes through and counts them: what a download event reports as sent. */
export class ByteCounter extends Transform {
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}
