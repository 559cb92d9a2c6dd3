export * from './types';
export * from './errors';
export { parseInventory, loadInventoryFile, ID_PATTERN } from './inventory';
export { bitmapName, checkChain, decideBackup, planCompletion, newBitmapAction, DEFAULT_BITMAP_PREFIX, type DiskBitmapState } from './change-tracking';
export { QemuNbdSnapshot } from './snapshot';
export { QemuImageSource, SNAPSHOT_DIR_PREFIX, EXPORT_NAME } from './qemu-image-source';
