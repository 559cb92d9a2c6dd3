import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { InventoryError } from './errors';
import { SUPPORTED_FORMATS, type DiskFormat, type Inventory, type InventoryDisk, type InventoryVm } from './types';

/** VM, disk and restore point ids: safe in file names, bitmap names and log lines. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const MAX_NAME_LENGTH = 256;

const VM_KEYS = new Set(['id', 'name', 'disks']);
const DISK_KEYS = new Set(['id', 'path', 'format']);

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value);
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkId(value: unknown, where: string, problems: string[]): value is string {
  if (typeof value !== 'string') {
    problems.push(`${where}: must be a string matching ${ID_PATTERN.source} (got ${describe(value)})`);
    return false;
  }
  if (!ID_PATTERN.test(value)) {
    problems.push(`${where}: ${describe(value)} must match ${ID_PATTERN.source} (letters, digits, '.', '_', '-'; 1-128 characters; starting with a letter or digit)`);
    return false;
  }
  return true;
}

/**
 * Validates an inventory document and returns it typed. Collects every problem
 * (wrong types, bad ids, relative paths, duplicates, unknown keys) and throws
 * one InventoryError listing them all.
 */
export function parseInventory(doc: unknown): Inventory {
  const problems: string[] = [];
  if (!isPlainObject(doc)) throw new InventoryError([`the document must be an object like {"vms": [...]} (got ${describe(doc)})`]);
  for (const key of Object.keys(doc)) if (key !== 'vms') problems.push(`unknown key ${JSON.stringify(key)} at the top level (expected only "vms")`);
  if (!Array.isArray(doc.vms)) throw new InventoryError([...problems, `vms: must be an array (got ${describe(doc.vms)})`]);

  const vms: InventoryVm[] = [];
  const vmIds = new Map<string, number>();
  const paths = new Map<string, string>();
  doc.vms.forEach((rawVm: unknown, i: number) => {
    const at = `vms[${i}]`;
    if (!isPlainObject(rawVm)) {
      problems.push(`${at}: must be an object with id, name and disks (got ${describe(rawVm)})`);
      return;
    }
    for (const key of Object.keys(rawVm)) if (!VM_KEYS.has(key)) problems.push(`${at}: unknown key ${JSON.stringify(key)} (expected id, name, disks)`);
    const idOk = checkId(rawVm.id, `${at}.id`, problems);
    const vmLabel = idOk ? `${at} (VM ${rawVm.id as string})` : at;
    if (idOk) {
      const first = vmIds.get(rawVm.id as string);
      if (first !== undefined) problems.push(`${at}.id: duplicate VM id ${JSON.stringify(rawVm.id)} (also vms[${first}])`);
      else vmIds.set(rawVm.id as string, i);
    }
    if (typeof rawVm.name !== 'string' || rawVm.name.trim() === '' || rawVm.name.length > MAX_NAME_LENGTH) {
      problems.push(`${vmLabel}.name: must be a non-empty string of at most ${MAX_NAME_LENGTH} characters (got ${describe(rawVm.name)})`);
    }
    if (!Array.isArray(rawVm.disks) || rawVm.disks.length === 0) {
      problems.push(`${vmLabel}.disks: must be a non-empty array (got ${describe(rawVm.disks)})`);
      return;
    }
    const disks: InventoryDisk[] = [];
    const diskIds = new Map<string, number>();
    rawVm.disks.forEach((rawDisk: unknown, j: number) => {
      const dat = `${vmLabel}.disks[${j}]`;
      if (!isPlainObject(rawDisk)) {
        problems.push(`${dat}: must be an object with id and path (got ${describe(rawDisk)})`);
        return;
      }
      for (const key of Object.keys(rawDisk)) if (!DISK_KEYS.has(key)) problems.push(`${dat}: unknown key ${JSON.stringify(key)} (expected id, path, format)`);
      const diskIdOk = checkId(rawDisk.id, `${dat}.id`, problems);
      if (diskIdOk) {
        const first = diskIds.get(rawDisk.id as string);
        if (first !== undefined) problems.push(`${dat}.id: duplicate disk id ${JSON.stringify(rawDisk.id)} in this VM (also disks[${first}])`);
        else diskIds.set(rawDisk.id as string, j);
      }
      const path = rawDisk.path;
      let pathOk = false;
      if (typeof path !== 'string' || path === '') problems.push(`${dat}.path: must be a non-empty string (got ${describe(path)})`);
      else if (path.includes('\0')) problems.push(`${dat}.path: must not contain a NUL character`);
      else if (!posix.isAbsolute(path)) problems.push(`${dat}.path: must be an absolute path (got ${describe(path)})`);
      else pathOk = true;
      if (pathOk) {
        const key = posix.normalize(path as string);
        const other = paths.get(key);
        if (other !== undefined) problems.push(`${dat}.path: ${describe(path)} is already used by ${other} (a disk file can belong to one VM disk only)`);
        else paths.set(key, `${vmLabel} disk ${String(rawDisk.id)}`);
      }
      const format = rawDisk.format;
      if (format !== undefined && !SUPPORTED_FORMATS.includes(format as DiskFormat)) {
        problems.push(`${dat}.format: must be one of ${SUPPORTED_FORMATS.join(', ')} when given (got ${describe(format)})`);
      }
      disks.push({ id: rawDisk.id as string, path: path as string, ...(format === undefined ? {} : { format: format as DiskFormat }) });
    });
    vms.push({ id: rawVm.id as string, name: rawVm.name as string, disks });
  });
  if (problems.length > 0) throw new InventoryError(problems);
  return { vms };
}

/** Reads and validates an inventory file; JSON syntax errors are reported as an InventoryError too. */
export async function loadInventoryFile(file: string): Promise<Inventory> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new InventoryError([`cannot read inventory file ${file}: ${(error as Error).message}`]);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw new InventoryError([`inventory file ${file} is not valid JSON: ${(error as Error).message}`]);
  }
  return parseInventory(doc);
}
