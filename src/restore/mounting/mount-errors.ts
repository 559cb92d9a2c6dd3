/** A restore-point mount request that cannot be carried out as asked (the HTTP layer maps these to 4xx). */
export class RestoreMountError extends Error {
  constructor(
    message: string,
    readonly code: 'MOUNT_EXISTS' | 'WORKDIR_IN_USE' | 'IMAGE_NOT_FOUND' | 'INVALID_REQUEST',
  ) {
    super(message);
    this.name = 'RestoreMountError';
  }
}
