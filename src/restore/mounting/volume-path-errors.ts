/**
 * Why a path inside a restore volume was refused. The HTTP layer maps
 * `status` directly: 400 for a malformed request, 403 for an attempt to
 * leave the volume, 404 for a path that does not exist inside it.
 */
export abstract class VolumePathError extends Error {
  abstract readonly status: 400 | 403 | 404;
  abstract readonly code: string;

  constructor(
    message: string,
    readonly userPath: string,
  ) {
    super(message);
  }
}

/** Malformed input: NUL bytes, absolute paths, encoded separators or dots, bad listing options. */
export class InvalidVolumePathError extends VolumePathError {
  readonly status = 400;
  readonly code = 'INVALID_PATH';
  override readonly name = 'InvalidVolumePathError';
}

/** The path, or a symlink on the way, leads out of the volume. */
export class PathEscapesVolumeError extends VolumePathError {
  readonly status = 403;
  readonly code = 'PATH_ESCAPES_VOLUME';
  override readonly name = 'PathEscapesVolumeError';
}

export class VolumePathNotFoundError extends VolumePathError {
  readonly status = 404;
  readonly code = 'PATH_NOT_FOUND';
  override readonly name = 'VolumePathNotFoundError';
}

/** A directory was required (listing, archive) but the path names something else. */
export class NotADirectoryPathError extends VolumePathError {
  readonly status = 400;
  readonly code = 'NOT_A_DIRECTORY';
  override readonly name = 'NotADirectoryPathError';
}
