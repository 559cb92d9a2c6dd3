import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BackupLab } from './backup-lab';
import { spawnSendense } from './processes';

/** The lab with its agent on the libvirt host instead of an inventory file. */
export class LibvirtLab extends BackupLab {
  vmIds: string[] = [];
  /** The guests' serial consoles: a guest that panicked says so there. */
  consoleLogs: string[] = [];
  /** How often the agent compares libvirt's domains with what it last reported. */
  inventoryPollMs = 1000;

  /**
   * libvirt's log of each lab domain's qemu (it names why qemu ended: a signal, an assertion, a guest shutdown)
   * and the guests' consoles: a domain that stopped under a test is explained by them, not by the hub or agent.
   */
  protected override diagnostics(): string {
    const logDir = '/var/log/libvirt/qemu';
    const tail = (file: string) => readFileSync(file, 'utf8').slice(-2500);
    const qemuLogs = existsSync(logDir) ? readdirSync(logDir).filter((f) => f.endsWith('.log')).map((f) => join(logDir, f)) : [];
    const mine = qemuLogs.filter((f) => this.vmIds.some((id) => readFileSync(f, 'utf8').includes(id)));
    return [...mine, ...this.consoleLogs.filter((f) => existsSync(f))].map((f) => `\n${f}:\n${tail(f)}`).join('');
  }

  override async startAgent(): Promise<void> {
    this.agent = spawnSendense(['agent', 'run', '--libvirt', 'qemu:///system'], { ...this.agentEnv(), SENDENSE_INVENTORY_POLL_MS: String(this.inventoryPollMs) });
    await this.until(async () => {
      const agents = (await this.api('GET', '/api/v1/agents')).body as { connected: boolean }[];
      const vms = (await this.api('GET', '/api/v1/vms')).body as { vmId: string; agentConnected: boolean }[];
      return agents.some((a) => a.connected) && this.vmIds.every((id) => vms.some((v) => v.vmId === id && v.agentConnected));
    }, 60_000, 'the agent to connect and report the libvirt domains');
  }

  get workDir(): string {
    return join(this.dir, 'agent', 'libvirt');
  }

  /** The restore once it ended (any status but running). A drill slot names its restore just before the request is recorded: 404 until then. */
  async waitForRestore(restoreId: string, timeoutMs = 300_000): Promise<any> {
    let r: any;
    await this.until(async () => {
      r = (await this.api('GET', `/api/v1/restores/${restoreId}`)).body;
      return r.status !== undefined && r.status !== 'running';
    }, timeoutMs, `restore ${restoreId} to end`);
    return r;
  }

  async agentId(): Promise<string> {
    return ((await this.api('GET', '/api/v1/agents')).body as { agentId: string }[])[0].agentId;
  }
}
