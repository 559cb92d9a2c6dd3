import { fold } from '../eventing/aggregate';
import { agentAggregate as agent, AgentCommand, agentTokenName, checkRegistration } from './agent.aggregate';
import { AgentEvent, InventoryVm } from './agent.events';

const register: AgentCommand = { kind: 'register', agentId: 'a1', name: 'esx-1', publicKey: 'ssh-ed25519 AAAA', fingerprint: 'SHA256:x', tokenId: 't' };
const vms: InventoryVm[] = [{ vmId: 'vm1', name: 'vm1', disks: [{ diskId: 'disk0', path: '/d0.qcow2', format: 'qcow2', virtualSize: 1, changeTracking: 'dirty-bitmap' }] }];

function run(commands: AgentCommand[]): AgentEvent[] {
  const events: AgentEvent[] = [];
  for (const c of commands) events.push(...agent.decide(c, fold(agent, events)));
  return events;
}

describe('agent rules', () => {
  it('registers once, then records connections and inventory changes only', () => {
    const events = run([register, { kind: 'connect', remoteAddress: '127.0.0.1', hubInstance: 'h1' }, { kind: 'reportInventory', vms }, { kind: 'reportInventory', vms }, { kind: 'disconnect', reason: 'eof' }, { kind: 'disconnect', reason: 'again' }]);
    expect(events.map((e) => e.type)).toEqual(['AgentRegistered', 'AgentConnected', 'VmInventoryReported', 'AgentDisconnected']);
    expect(fold(agent, events)).toMatchObject({ connected: false, inventory: vms });
  });

  it("ends only the session recorded through the hub process it names: a session recorded since through another hub stays", () => {
    const viaGone = run([register, { kind: 'connect', remoteAddress: '10.0.0.1', hubInstance: 'h1' }, { kind: 'disconnect', reason: 'its hub process h1 stopped', via: 'h1' }]);
    expect(viaGone.map((e) => e.type)).toEqual(['AgentRegistered', 'AgentConnected', 'AgentDisconnected']);
    const movedOn = run([register, { kind: 'connect', remoteAddress: '10.0.0.1', hubInstance: 'h1' }, { kind: 'connect', remoteAddress: '10.0.0.1', hubInstance: 'h2' }, { kind: 'disconnect', reason: 'its hub process h1 stopped', via: 'h1' }]);
    expect(fold(agent, movedOn)).toMatchObject({ connected: true, connectedVia: 'h2' });
  });

  it('refuses a second registration and anything from an unknown agent', () => {
    expect(() => run([register, register])).toThrow(/already registered/);
    expect(() => run([{ kind: 'connect', remoteAddress: 'x', hubInstance: 'h1' }])).toThrow(/not registered/);
  });

  it('registers only one well-formed key per agent, and only under a name and key nobody holds', () => {
    const key = { type: 'ssh-ed25519', normalized: 'ssh-ed25519 AAAA', fingerprint: 'SHA256:x' };
    const free = { name: false, key: false };
    expect(checkRegistration('esx-1', key, free)).toBe(key);
    expect(() => checkRegistration('esx-1', null, { name: true, key: true })).toThrow(/publicKey must be one OpenSSH public key line/);
    expect(() => checkRegistration('esx-1', key, { name: true, key: true })).toThrow('an agent named esx-1 is already registered');
    expect(() => checkRegistration('esx-1', key, { name: false, key: true })).toThrow('the key SHA256:x is already registered to another agent');
  });

  it('names the agent token after the agent', () => {
    expect(agentTokenName('esx-1')).toBe('agent-esx-1');
  });
});
