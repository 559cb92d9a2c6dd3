/** Where an NBD export lives, as parsed from an NBD URI (NetworkBlockDevice doc/uri.md). */
export type NbdAddress =
  | { transport: 'tcp'; host: string; port: number; exportName: string }
  | { transport: 'unix'; socketPath: string; exportName: string };

export const NBD_DEFAULT_PORT = 10809;

export class NbdUriError extends Error {
  readonly code = 'NBD_BAD_URI';
  constructor(uri: string, reason: string) {
    super(`invalid NBD URI ${JSON.stringify(uri)}: ${reason}`);
    this.name = 'NbdUriError';
  }
}

function decode(uri: string, text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new NbdUriError(uri, `${what} has a malformed %-escape`);
  }
}

function parseQuery(uri: string, query: string): Map<string, string> {
  const params = new Map<string, string>();
  if (!query) return params;
  for (const part of query.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const key = decode(uri, eq < 0 ? part : part.slice(0, eq), 'query key');
    const value = decode(uri, eq < 0 ? '' : part.slice(eq + 1).replace(/\+/g, '%20'), 'query value');
    if (params.has(key)) throw new NbdUriError(uri, `query parameter ${key} given twice`);
    params.set(key, value);
  }
  return params;
}

/**
 * Parses `nbd://host[:port][/export]` and `nbd+unix:///[export]?socket=PATH`.
 * The export name is the percent-decoded path without its first slash (so
 * `nbd://h//x` names export "/x"); IPv6 hosts go in brackets. TLS schemes
 * (nbds, nbds+unix) and unknown query parameters are refused rather than ignored.
 */
export function parseNbdUri(uri: string): NbdAddress {
  const schemeEnd = uri.indexOf('://');
  if (schemeEnd < 0) throw new NbdUriError(uri, 'expected nbd://host[:port]/export or nbd+unix:///export?socket=PATH');
  const scheme = uri.slice(0, schemeEnd).toLowerCase();
  let rest = uri.slice(schemeEnd + 3);
  if (rest.includes('#')) throw new NbdUriError(uri, 'fragments are not allowed');
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash + 1);
  const exportName = decode(uri, path, 'export name');
  const params = parseQuery(uri, query);
  if (authority.includes('@')) throw new NbdUriError(uri, 'user information is not supported');

  if (scheme === 'nbds' || scheme === 'nbds+unix' || scheme === 'nbds+tcp') throw new NbdUriError(uri, 'TLS (nbds) is not supported');
  if (scheme === 'nbd' || scheme === 'nbd+tcp') {
    const [unknown] = params.keys();
    if (unknown !== undefined) throw new NbdUriError(uri, `unsupported query parameter ${unknown}`);
    let host: string;
    let portText: string | undefined;
    if (authority.startsWith('[')) {
      const close = authority.indexOf(']');
      if (close < 0) throw new NbdUriError(uri, 'unterminated [IPv6] host');
      host = authority.slice(1, close);
      const after = authority.slice(close + 1);
      if (after && !after.startsWith(':')) throw new NbdUriError(uri, `unexpected ${JSON.stringify(after)} after the IPv6 host`);
      portText = after ? after.slice(1) : undefined;
      if (!/^[0-9a-fA-F:.]+(%[\w.-]+)?$/.test(host) || !host.includes(':')) throw new NbdUriError(uri, `invalid IPv6 address ${host}`);
      host = decode(uri, host, 'IPv6 zone');
    } else {
      const colon = authority.lastIndexOf(':');
      host = colon < 0 ? authority : authority.slice(0, colon);
      portText = colon < 0 ? undefined : authority.slice(colon + 1);
      if (host.includes(':')) throw new NbdUriError(uri, 'IPv6 hosts must be written in brackets');
      host = decode(uri, host, 'host');
    }
    if (!host) throw new NbdUriError(uri, 'a host is required for nbd://');
    if (/[\s/]/.test(host)) throw new NbdUriError(uri, `invalid host ${JSON.stringify(host)}`);
    let port = NBD_DEFAULT_PORT;
    if (portText !== undefined) {
      if (!/^\d{1,5}$/.test(portText)) throw new NbdUriError(uri, `invalid port ${JSON.stringify(portText)}`);
      port = Number(portText);
      if (port < 1 || port > 65535) throw new NbdUriError(uri, `port ${port} is out of range`);
    }
    return { transport: 'tcp', host, port, exportName };
  }
  if (scheme === 'nbd+unix') {
    if (authority) throw new NbdUriError(uri, 'nbd+unix:// takes no host (write nbd+unix:///export?socket=PATH)');
    const socketPath = params.get('socket');
    const unknown = [...params.keys()].find((key) => key !== 'socket');
    if (unknown !== undefined) throw new NbdUriError(uri, `unsupported query parameter ${unknown}`);
    if (!socketPath) throw new NbdUriError(uri, 'nbd+unix:// needs ?socket=PATH');
    if (socketPath.includes('\0')) throw new NbdUriError(uri, 'socket path contains NUL');
    return { transport: 'unix', socketPath, exportName };
  }
  if (scheme === 'nbd+vsock' || scheme === 'nbd+ssh') throw new NbdUriError(uri, `${scheme} is not supported`);
  throw new NbdUriError(uri, `unknown scheme ${scheme}: expected nbd or nbd+unix`);
}

/** The canonical URI of an address (export name and socket path percent-encoded). */
export function formatNbdUri(address: NbdAddress): string {
  const path = address.exportName.split('/').map(encodeURIComponent).join('/');
  if (address.transport === 'unix') return `nbd+unix:///${path}?socket=${encodeURIComponent(address.socketPath).replace(/%2F/g, '/')}`;
  const host = address.host.includes(':') ? `[${address.host.replace(/%/g, '%25')}]` : encodeURIComponent(address.host);
  return `nbd://${host}:${address.port}/${path}`;
}
