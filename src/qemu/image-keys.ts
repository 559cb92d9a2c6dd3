import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, resolve, sep } from 'node:path';

/**
 * Encrypted repositories (qcow2's own LUKS encryption). Every qemu-img and qemu-nbd the hub runs on a repository's
 * files goes through the builders in this folder, and they ask this keyring how to open a file: a plain chain opens
 * as `-f qcow2 FILE`; a chain with an encrypted file needs a qemu secret object (read by qemu from the key file, so
 * the key is never on a command line) and `--image-opts` naming that secret for each encrypted file of the chain,
 * since qemu does not pass a layer's secret on to its backing file.
 *
 * The keyring is process-wide, as the io_uring decision in qemu-nbd-args.ts is: which key opens a file follows from
 * the file alone (its header says whether it is encrypted, its path which repository holds it), and every opener of
 * a repository file, down to a chain surgery on one file, gets the same answer without carrying the key around.
 */
export const SECRET_ID = 'sendense-key';

/** A key file holds the passphrase as text: qemu refuses a LUKS secret that is not valid UTF-8. */
export const MIN_KEY_BYTES = 32;
export const MAX_KEY_BYTES = 4096;

export interface RepositoryKeyConfig {
  /** Where restore points live. */
  root: string;
  /** The repository's name, for messages. */
  name: string;
  keyFile: string;
  /** sha256:<hex> of the key file's bytes, as recorded when the repository was registered. */
  fingerprint: string;
}

/** What qemu needs to open one image of an encrypted repository. */
export interface ImageKey {
  keyFile: string;
  /** Per file of the chain, newest first (the image itself, then its backing file...): whether it is encrypted. */
  encryptedLayers: boolean[];
}

/** The hub cannot open an encrypted repository's files: no key file, an unreadable one, or another key. */
export class ImageKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageKeyError';
  }
}

/** Reads and checks a key file; its fingerprint is what the repository records (never the key). */
export function readKeyFile(keyFile: string): { fingerprint: string } {
  if (!isAbsolute(keyFile)) throw new ImageKeyError(`key file ${keyFile} must be an absolute path`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(keyFile);
  } catch (error) {
    throw new ImageKeyError(`key file ${keyFile} cannot be read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  if (bytes.length < MIN_KEY_BYTES || bytes.length > MAX_KEY_BYTES) throw new ImageKeyError(`key file ${keyFile} holds ${bytes.length} bytes; a key is ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} bytes of text (e.g. openssl rand -hex 32)`);
  if (!isUtf8Text(bytes)) throw new ImageKeyError(`key file ${keyFile} is not UTF-8 text without NUL bytes (qemu reads a LUKS passphrase as text; e.g. openssl rand -hex 32)`);
  return { fingerprint: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
}

function isUtf8Text(bytes: Buffer): boolean {
  if (bytes.includes(0)) return false;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

export class ImageKeyring {
  /** realRoot: files reached through a symlinked root are opened by their real path (restore mounts resolve them). */
  private readonly repositories = new Map<string, RepositoryKeyConfig & { realRoot: string }>();

  register(config: RepositoryKeyConfig): void {
    const root = resolve(config.root);
    this.repositories.set(root, { ...config, root, realRoot: realRoot(root) });
  }

  unregister(root: string): void {
    this.repositories.delete(resolve(root));
  }

  /** The repository's key file after checking it is there and is the recorded key; undefined for a repository without encryption. */
  keyFileForRoot(root: string): string | undefined {
    const config = this.repositories.get(resolve(root));
    return config && this.checkedKeyFile(config);
  }

  /** The key a new file at `file` is written with: its repository's, or none. */
  keyForNewFile(file: string): string | undefined {
    const config = this.repositoryOf(file);
    return config && this.checkedKeyFile(config);
  }

  /** How qemu opens `file` with its backing chain; undefined when no file of the chain is encrypted. */
  keyForImage(file: string): ImageKey | undefined {
    const encryptedLayers = chainEncryption(resolve(file));
    if (!encryptedLayers.includes(true)) return undefined;
    const config = this.repositoryOf(file);
    if (!config) throw new ImageKeyError(`${file} is encrypted, and this hub has no key for it (no encrypted repository holds it)`);
    return { keyFile: this.checkedKeyFile(config), encryptedLayers };
  }

  private repositoryOf(file: string): RepositoryKeyConfig | undefined {
    const abs = resolve(file);
    for (const config of this.repositories.values()) if (abs.startsWith(config.root + sep) || abs.startsWith(config.realRoot + sep)) return config;
    return undefined;
  }

  private checkedKeyFile(config: RepositoryKeyConfig): string {
    let fingerprint: string;
    try {
      fingerprint = readKeyFile(config.keyFile).fingerprint;
    } catch (error) {
      throw new ImageKeyError(`repository ${config.name} is encrypted with key ${config.fingerprint}, and this hub cannot use it: ${(error as Error).message}`);
    }
    if (fingerprint !== config.fingerprint) throw new ImageKeyError(`repository ${config.name} is encrypted with key ${config.fingerprint}, but key file ${config.keyFile} holds key ${fingerprint}`);
    return config.keyFile;
  }
}

function realRoot(root: string): string {
  try {
    return realpathSync(root);
  } catch {
    return root;
  }
}

/** The keyring of this process: the hub registers each encrypted repository it holds. */
export const imageKeys = new ImageKeyring();

const QCOW2_MAGIC = 0x514649fb;
const HEADER_BYTES = 36;
const MAX_BACKING_NAME = 1023;
/** A loop in backing names, or a chain no repository would hold. */
const MAX_LAYERS = 10_000;

/**
 * Whether each file of the chain from `file` down is encrypted (the header's crypt_method), newest first. Read from
 * the headers directly: this runs before every qemu process on a repository file. A file that is not qcow2 ends the
 * walk (qemu reports it when it opens the chain); a missing one too.
 */
export function chainEncryption(file: string): boolean[] {
  const layers: boolean[] = [];
  for (let current: string | null = file; current !== null && layers.length < MAX_LAYERS; ) {
    const header = readHeader(current);
    if (!header) break;
    layers.push(header.encrypted);
    current = header.backing === null ? null : isAbsolute(header.backing) ? header.backing : resolve(dirname(current), header.backing);
  }
  return layers;
}

function readHeader(file: string): { encrypted: boolean; backing: string | null } | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const header = Buffer.alloc(HEADER_BYTES);
    if (readSync(fd, header, 0, HEADER_BYTES, 0) < HEADER_BYTES || header.readUInt32BE(0) !== QCOW2_MAGIC) return null;
    const offset = Number(header.readBigUInt64BE(8));
    const length = header.readUInt32BE(16);
    const encrypted = header.readUInt32BE(32) !== 0;
    if (offset === 0 || length === 0 || length > MAX_BACKING_NAME) return { encrypted, backing: null };
    const name = Buffer.alloc(length);
    if (readSync(fd, name, 0, length, offset) !== length) return { encrypted, backing: null };
    const backing = name.toString('utf8');
    // a backing given as json: or a protocol (nbd:...) is not a file of the chain
    return { encrypted, backing: /^[a-z][a-z0-9+.-]*:/i.test(backing) ? null : backing };
  } finally {
    closeSync(fd);
  }
}

/** qemu's option syntax takes "," as a separator; a literal comma is written twice. */
export function qemuOptionValue(value: string): string {
  return value.replace(/,/g, ',,');
}

export function secretObjectArgs(keyFile: string): string[] {
  return ['--object', `secret,id=${SECRET_ID},file=${qemuOptionValue(keyFile)}`];
}

/** The image's --image-opts: the file, and the secret for each encrypted file of its chain. */
export function imageOptions(file: string, key: ImageKey, driver = 'qcow2'): string {
  const secrets = key.encryptedLayers.flatMap((encrypted, depth) => (encrypted ? [`${'backing.'.repeat(depth)}encrypt.key-secret=${SECRET_ID}`] : []));
  return [`driver=${driver}`, `file.filename=${qemuOptionValue(file)}`, ...secrets].join(',');
}

/** The same as a JSON object, for the places qemu takes a `json:` filename. */
export function imageJson(file: string, key: ImageKey): Record<string, unknown> {
  const options: Record<string, unknown> = { driver: 'qcow2', 'file.driver': 'file', 'file.filename': file };
  key.encryptedLayers.forEach((encrypted, depth) => {
    if (encrypted) options[`${'backing.'.repeat(depth)}encrypt.key-secret`] = SECRET_ID;
  });
  return options;
}

/** The file a `json:` image name written by imageJson opens, or null for any other name. */
export function jsonImageFile(name: string): string | null {
  if (!name.startsWith('json:')) return null;
  try {
    const options = JSON.parse(name.slice('json:'.length)) as Record<string, unknown>;
    return typeof options['file.filename'] === 'string' ? options['file.filename'] : null;
  } catch {
    return null;
  }
}

/**
 * How a qemu tool names `file` on its command line: a plain chain as `-f qcow2 FILE`, an encrypted one as the
 * secret object and `--image-opts OPTIONS`. `key` as keyForImage answered.
 */
export function imageArgs(file: string, key: ImageKey | undefined, format = 'qcow2'): string[] {
  return key ? [...secretObjectArgs(key.keyFile), '--image-opts', imageOptions(file, key)] : ['-f', format, file];
}

/** Whether a word of a qemu command line names `file` as its image: the file itself, or the options imageOptions wrote for it. */
export function namesImage(word: string, file: string): boolean {
  const options = `driver=qcow2,file.filename=${qemuOptionValue(file)}`;
  // a doubled comma after the name would be part of a longer file name
  return word === file || word === options || (word.startsWith(`${options},`) && word[options.length + 1] !== ',');
}
