export * from './qemu-img';
export * from './manifest';
export * from './chain-validator';
export * from './chain-surgery';
