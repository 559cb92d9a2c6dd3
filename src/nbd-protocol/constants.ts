/**
 * Wire constants of the NBD protocol (NetworkBlockDevice doc/proto.md).
 * Only what this client speaks: fixed newstyle negotiation, simple and
 * structured replies, meta contexts. No TLS, no extended headers.
 */

/** "NBDMAGIC", the first 8 bytes a newstyle server sends. */
export const NBD_INIT_MAGIC = 0x4e42444d41474943n;
/** "IHAVEOPT": second server magic, and the prefix of every client option. */
export const NBD_OPTS_MAGIC = 0x49484156454f5054n;
/** Prefix of every option reply. */
export const NBD_OPTION_REPLY_MAGIC = 0x0003e889045565a9n;
/** Oldstyle servers send this instead of IHAVEOPT; we do not speak oldstyle. */
export const NBD_OLDSTYLE_MAGIC = 0x00420281861253n;

export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;
/** Extended-header replies; never negotiated by us, recognised only to give a clear error. */
export const NBD_EXTENDED_REPLY_MAGIC = 0x6e8a278c;

// Handshake flags (server) and client flags.
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;

// Transmission flags.
export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_READ_ONLY = 1 << 1;
export const NBD_FLAG_SEND_FLUSH = 1 << 2;
export const NBD_FLAG_SEND_FUA = 1 << 3;
export const NBD_FLAG_ROTATIONAL = 1 << 4;
export const NBD_FLAG_SEND_TRIM = 1 << 5;
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
export const NBD_FLAG_SEND_DF = 1 << 7;
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8;
export const NBD_FLAG_SEND_RESIZE = 1 << 9;
export const NBD_FLAG_SEND_CACHE = 1 << 10;
export const NBD_FLAG_SEND_FAST_ZERO = 1 << 11;

// Options.
export const NBD_OPT_EXPORT_NAME = 1;
export const NBD_OPT_ABORT = 2;
export const NBD_OPT_LIST = 3;
export const NBD_OPT_STARTTLS = 5;
export const NBD_OPT_INFO = 6;
export const NBD_OPT_GO = 7;
export const NBD_OPT_STRUCTURED_REPLY = 8;
export const NBD_OPT_LIST_META_CONTEXT = 9;
export const NBD_OPT_SET_META_CONTEXT = 10;

// Option reply types.
export const NBD_REP_ACK = 1;
export const NBD_REP_SERVER = 2;
export const NBD_REP_INFO = 3;
export const NBD_REP_META_CONTEXT = 4;
export const NBD_REP_FLAG_ERROR = 0x80000000;

export const NBD_REP_ERROR_NAMES: Readonly<Record<number, string>> = {
  1: 'NBD_REP_ERR_UNSUP',
  2: 'NBD_REP_ERR_POLICY',
  3: 'NBD_REP_ERR_INVALID',
  4: 'NBD_REP_ERR_PLATFORM',
  5: 'NBD_REP_ERR_TLS_REQD',
  6: 'NBD_REP_ERR_UNKNOWN',
  7: 'NBD_REP_ERR_SHUTDOWN',
  8: 'NBD_REP_ERR_BLOCK_SIZE_REQD',
  9: 'NBD_REP_ERR_TOO_BIG',
  10: 'NBD_REP_ERR_EXT_HEADER_REQD',
};
export const NBD_REP_ERR_UNSUP = NBD_REP_FLAG_ERROR + 1;
export const NBD_REP_ERR_INVALID = NBD_REP_FLAG_ERROR + 3;
export const NBD_REP_ERR_UNKNOWN = NBD_REP_FLAG_ERROR + 6;
export const NBD_REP_ERR_TLS_REQD = NBD_REP_FLAG_ERROR + 5;

// NBD_INFO_* items inside NBD_REP_INFO.
export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_NAME = 1;
export const NBD_INFO_DESCRIPTION = 2;
export const NBD_INFO_BLOCK_SIZE = 3;

// Commands.
export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_CACHE = 5;
export const NBD_CMD_WRITE_ZEROES = 6;
export const NBD_CMD_BLOCK_STATUS = 7;

export const NBD_CMD_NAMES: Readonly<Record<number, string>> = {
  0: 'READ',
  1: 'WRITE',
  2: 'DISC',
  3: 'FLUSH',
  4: 'TRIM',
  5: 'CACHE',
  6: 'WRITE_ZEROES',
  7: 'BLOCK_STATUS',
};

// Command flags.
export const NBD_CMD_FLAG_FUA = 1 << 0;
export const NBD_CMD_FLAG_NO_HOLE = 1 << 1;
export const NBD_CMD_FLAG_DF = 1 << 2;
export const NBD_CMD_FLAG_REQ_ONE = 1 << 3;
export const NBD_CMD_FLAG_FAST_ZERO = 1 << 4;

// Structured reply chunks.
export const NBD_REPLY_FLAG_DONE = 1 << 0;
export const NBD_REPLY_TYPE_NONE = 0;
export const NBD_REPLY_TYPE_OFFSET_DATA = 1;
export const NBD_REPLY_TYPE_OFFSET_HOLE = 2;
export const NBD_REPLY_TYPE_BLOCK_STATUS = 5;
export const NBD_REPLY_TYPE_ERROR_BIT = 1 << 15;
export const NBD_REPLY_TYPE_ERROR = NBD_REPLY_TYPE_ERROR_BIT + 1;
export const NBD_REPLY_TYPE_ERROR_OFFSET = NBD_REPLY_TYPE_ERROR_BIT + 2;

// base:allocation flags.
export const NBD_STATE_HOLE = 1 << 0;
export const NBD_STATE_ZERO = 1 << 1;
// qemu:dirty-bitmap:NAME flags.
export const NBD_STATE_DIRTY = 1 << 0;
// qemu:allocation-depth (qemu-nbd -A): the flags are a number, not bits: 0 unallocated, 1 the export's own file, 2 its backing file, and so on.
export const ALLOCATION_DEPTH_TOP = 1;

export const BASE_ALLOCATION = 'base:allocation';
export const QEMU_ALLOCATION_DEPTH = 'qemu:allocation-depth';
export const QEMU_DIRTY_BITMAP_PREFIX = 'qemu:dirty-bitmap:';

/** Errors a server may send (proto.md "Error values"), by number. */
export const NBD_ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: 'EPERM',
  5: 'EIO',
  12: 'ENOMEM',
  22: 'EINVAL',
  28: 'ENOSPC',
  75: 'EOVERFLOW',
  95: 'ENOTSUP',
  108: 'ESHUTDOWN',
};

export const NBD_ERRNO_TEXT: Readonly<Record<string, string>> = {
  EPERM: 'operation not permitted',
  EIO: 'input/output error',
  ENOMEM: 'cannot allocate memory',
  EINVAL: 'invalid argument',
  ENOSPC: 'no space left on device',
  EOVERFLOW: 'value too large',
  ENOTSUP: 'operation not supported',
  ESHUTDOWN: 'server is shutting down',
};

export const REQUEST_HEADER_SIZE = 28;
export const SIMPLE_REPLY_HEADER_SIZE = 16;
export const STRUCTURED_REPLY_HEADER_SIZE = 20;

/** Spec: a client wanting interoperability keeps READ/WRITE payloads at or below 32 MiB when the server states no maximum. */
export const DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024;
/** Spec: strings (names, messages) MUST NOT exceed 4096 bytes. */
export const NBD_MAX_STRING = 4096;
/** Upper bound for commands without payload (WRITE_ZEROES, BLOCK_STATUS, TRIM): their length is 32 bits; qemu clamps at INT_MAX. */
export const MAX_NON_PAYLOAD_LENGTH = 1024 * 1024 * 1024;
