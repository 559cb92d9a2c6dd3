import { existsSync, mkdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { openNbd } from '../../src/nbd-protocol/open-nbd';
import { BLOCK, BlockMap } from './blocks';
import { allocatedBytes, Cost, inProcess, shell } from './measure';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/*
 * The qcow2 candidates, written by the real qemu-img and qemu-nbd: a full is `qemu-img convert` of the disk (with
 * `-c` and zstd clusters when compressing); an incremental is an overlay on the VM's previous point holding the
 * changed 64 KiB blocks, written through qemu-nbd (through its `compress` filter when compressing), as the hub
 * writes a point today. `crossVm`: the fulls of VMs after the first are overlays on the first VM's full holding only
 * the blocks that differ from it (the "new full on the most similar point" candidate; here the most similar is known:
 * every VM is a clone of the same template).
 */
export class Qcow2Candidate {
  private readonly last = new Map<number, { file: string; map: BlockMap }>();
  private first: { file: string; map: BlockMap } | null = null;

  constructor(
    private readonly dir: string,
    private readonly compress: boolean,
    private readonly crossVm: boolean,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  file(vm: number, day: number): string {
    return join(this.dir, `vm-${vm}-d${day}.qcow2`);
  }

  async point(vm: number, day: number, image: string, map: BlockMap, changed: number[]): Promise<Cost> {
    const file = this.file(vm, day);
    const previous = this.last.get(vm);
    let cost: Cost;
    if (previous) cost = await this.overlay(file, previous.file, image, changed, map);
    else if (this.crossVm && this.first) {
      const base = this.first.map;
      const differing = map.digests.flatMap((d, i) => (d !== base.digests[i] ? [i] : []));
      cost = await this.overlay(file, this.first.file, image, differing, map);
    } else {
      const options = this.compress ? ['-c', '-o', 'cluster_size=65536,compression_type=zstd'] : ['-o', 'cluster_size=65536'];
      cost = await shell(`qemu-img convert -f raw -O qcow2 ${options.join(' ')} '${image}' '${file}' && sync '${file}'`);
    }
    this.last.set(vm, { file, map });
    this.first ??= { file, map };
    return cost;
  }

  private async overlay(file: string, parent: string, image: string, blocks: number[], map: BlockMap): Promise<Cost> {
    const started = process.hrtime.bigint();
    const create = await shell(`qemu-img create -q -f qcow2 -o cluster_size=65536${this.compress ? ',compression_type=zstd' : ''} -b '${parent}' -F qcow2 '${file}'`);
    const socket = `${file}.sock`;
    const opts = this.compress ? `driver=compress,file.driver=qcow2,file.file.driver=file,file.file.filename=${file}` : `driver=qcow2,file.driver=file,file.filename=${file}`;
    // without --persistent qemu-nbd serves one client and exits: its CPU is in the shell's times
    const server = shell(`qemu-nbd --image-opts '${opts}' -k '${socket}' --cache=writeback`);
    const write = await inProcess(async () => {
      while (!existsSync(socket)) await sleep(5);
      let client;
      for (let attempt = 0; ; attempt++) {
        try {
          client = await openNbd(`nbd+unix:///?socket=${socket}`);
          break;
        } catch (error) {
          if (attempt > 200) throw error;
          await sleep(10);
        }
      }
      const source = await open(image, 'r');
      const buffer = Buffer.allocUnsafe(BLOCK);
      try {
        for (const i of blocks) {
          if (map.digests[i] === null) await client.writeZeroes(i * BLOCK, BLOCK);
          else {
            const { bytesRead } = await source.read(buffer, 0, BLOCK, i * BLOCK);
            await client.write(i * BLOCK, buffer.subarray(0, bytesRead));
          }
        }
        await client.flush();
      } finally {
        await source.close();
        await client.close();
      }
    });
    const served = await server;
    return { wallS: Number(process.hrtime.bigint() - started) / 1e9, cpuS: create.cpuS + served.cpuS + write.cost.cpuS };
  }

  bytesOnDisk(): number {
    return allocatedBytes(this.dir);
  }

  /** The newest point of `vm` read whole through its chain into a raw file: what today's disk image download does. */
  restore(vm: number, out: string): Promise<Cost> {
    const { file } = this.last.get(vm)!;
    return shell(`qemu-img convert -f qcow2 -O raw '${file}' '${out}' && sync '${out}'`);
  }
}
