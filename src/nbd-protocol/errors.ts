import { NBD_CMD_NAMES, NBD_ERRNO_NAMES, NBD_ERRNO_TEXT, NBD_REP_ERROR_NAMES, NBD_REP_FLAG_ERROR } from './constants';

/** Base of every error this client raises. */
export class NbdError extends Error {
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The server sent bytes that break the protocol (bad magic, unknown cookie, lengths that do not add up, ...). */
export class NbdProtocolError extends NbdError {
  constructor(message: string) {
    super(`NBD protocol error: ${message}`, 'NBD_PROTOCOL_ERROR');
  }
}

/** The connection ended (or was never usable) while a request needed it. */
export class NbdConnectionClosedError extends NbdError {
  constructor(message: string, readonly reason?: Error) {
    super(message, 'NBD_CONNECTION_CLOSED');
  }
}

/** Option haggling failed: the server refused an option, the export or a meta context does not exist, ... */
export class NbdHandshakeError extends NbdError {
  constructor(message: string, code = 'NBD_HANDSHAKE_FAILED') {
    super(message, code);
  }
}

/** Name of an NBD error value: the errno names of proto.md, `E<number>` for anything else. */
export function nbdErrnoName(errno: number): string {
  return NBD_ERRNO_NAMES[errno] ?? `E${errno}`;
}

export function nbdCommandName(type: number): string {
  return NBD_CMD_NAMES[type] ?? `CMD_${type}`;
}

export function optionReplyErrorName(replyType: number): string {
  const bare = (replyType & ~NBD_REP_FLAG_ERROR) >>> 0;
  return NBD_REP_ERROR_NAMES[bare] ?? `NBD_REP_ERR_${bare}`;
}

/**
 * A command failed: `code` is the errno name (EIO, EPERM, ENOSPC, EINVAL, ...),
 * `errno` its number, plus the command, offset and length it concerned.
 * `local` is true when the client refused the request before sending it.
 */
export class NbdCommandError extends NbdError {
  readonly errno: number;
  constructor(
    readonly command: string,
    readonly offset: number,
    readonly length: number,
    errno: number,
    readonly serverMessage?: string,
    readonly errorOffset?: number,
    readonly local = false,
  ) {
    const code = nbdErrnoName(errno);
    const text = NBD_ERRNO_TEXT[code] ? ` (${NBD_ERRNO_TEXT[code]})` : '';
    const where = command === 'FLUSH' || command === 'DISC' ? '' : ` at offset ${offset} length ${length}`;
    const at = errorOffset !== undefined ? ` [error at offset ${errorOffset}]` : '';
    const detail = serverMessage ? `: ${serverMessage}` : '';
    const origin = local ? 'refused by client' : 'failed';
    super(`NBD ${command}${where} ${origin}: ${code}${text}${at}${detail}`, code);
    this.errno = errno;
  }
}
