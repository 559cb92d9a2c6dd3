const WIDTH = 20;

/** Two unsigned 64-bit numbers as one fixed-width string, so string order equals numeric order. */
export function encodePosition(major: bigint | string, minor: bigint | string): string {
  return `${String(major).padStart(WIDTH, '0')}:${String(minor).padStart(WIDTH, '0')}`;
}

export function decodePosition(position: string): [bigint, bigint] {
  const match = /^(\d{1,20}):(\d{1,20})$/.exec(position);
  if (!match) throw new InvalidPositionError(position);
  return [BigInt(match[1]), BigInt(match[2])];
}

export class InvalidPositionError extends Error {
  constructor(readonly position: string) {
    super(`invalid event store position: ${JSON.stringify(position).slice(0, 80)}`);
    this.name = 'InvalidPositionError';
  }
}
