import { measure } from '../repositories/qcow2/qemu-img';
import type { RepositoriesService } from '../repositories/registry/repositories.service';
import { SpaceCheck } from './space-check';

jest.mock('../repositories/qcow2/qemu-img', () => ({ measure: jest.fn(async ({ size }: { size: number }) => ({ required: 0, fullyAllocated: size + 1000, bitmaps: null })) }));

describe('SpaceCheck', () => {
  const MiB = 1024 * 1024;

  it('asks qemu-img measure once per virtual size and sums every disk', async () => {
    const check = new SpaceCheck({} as RepositoriesService);
    expect(await check.requiredBytes([64 * MiB, 64 * MiB, 1024 * MiB])).toBe(1152 * MiB + 3000);
    expect(await check.requiredBytes([64 * MiB])).toBe(64 * MiB + 1000);
    expect((measure as jest.Mock).mock.calls.map(([source]) => source.size)).toEqual([64 * MiB, 1024 * MiB]);
  });
});
