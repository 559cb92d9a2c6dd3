export * from './types';
export * from './errors';
export { parseInventory, loadInventoryFile, ID_PATTERN } from './inventory';
export { QemuImg, parseImageInfo, type BitmapInfo, type ImageInfo } from './qemu-img';
export { bitmapName, checkChain, decideBackup, planCompletion, newBitmapAction, DEFAULT_BITMAP_PREFIX, type DiskBitmapState } from './change-tracking';
export { QemuNbdSnapshot } from './snapshot';
export { QemuImageSource, SNAPSHOT_DIR_PREFIX, EXPORT_NAME } from './qemu-image-source';
