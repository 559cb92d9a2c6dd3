/** Restore-point chains are built and repaired with the product's one qemu-img wrapper. */
export * from '../../qemu/qemu-img';
