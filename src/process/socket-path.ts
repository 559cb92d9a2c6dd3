/**
 * A Unix socket's path holds at most 107 bytes (sun_path's 108 with its NUL): nbdkit and PostgreSQL refuse a longer
 * one (qemu takes 108). Checked where a socket's place can be chosen or refused before it is made: instant
 * recovery's proxies, an inventory agent's snapshots, the embedded database.
 */
export const MAX_SOCKET_PATH = 107;

