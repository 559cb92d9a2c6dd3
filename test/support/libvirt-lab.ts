import { join } from 'node:path';
import { BackupLab } from './backup-lab';
import { spawnSendense } from './processes';

/** The lab with its agent on the libvirt host instead of an inventory file. */
export class LibvirtLab extends BackupLab {
  vmIds: string[] = [];

  override async startAgent(): Promise<void> {
    this.agent = spawnSendense(['agent', 'run', '--libvirt', 'qemu:///system'], { ...this.agentEnv(), SENDENSE_INVENTORY_POLL_MS: '1000' });
    await this.until(async () => {
      const agents = (await this.api('GET', '/api/v1/agents')).body as { connected: boolean }[];
      const vms = (await this.api('GET', '/api/v1/vms')).body as { vmId: string; agentConnected: boolean }[];
      return agents.some((a) => a.connected) && this.vmIds.every((id) => vms.some((v) => v.vmId === id && v.agentConnected));
    }, 60_000, 'the agent to connect and report the libvirt domains');
  }

  get workDir(): string {
    return join(this.dir, 'agent', 'libvirt');
  }

  async agentId(): Promise<string> {
    return ((await this.api('GET', '/api/v1/agents')).body as { agentId: string }[])[0].agentId;
  }
}
