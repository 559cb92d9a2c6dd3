import { commandMessages } from './virsh';

describe("commandMessages: a command's stderr in a virsh shell", () => {
  it('is no failure when it holds only warnings', () => {
    expect(commandMessages('warning: something odd\n')).toEqual({ lines: ['warning: something odd'], failed: false });
  });

  it("takes virsh's reconnect notes, a lost connection it got back included, for what they are", () => {
    // seen in CI: libvirtd closed the idle shell's connection; the next command reconnected and ran
    expect(commandMessages('error: Disconnected from qemu:///system due to end of file\nerror: Reconnected to the hypervisor\n')).toEqual({ lines: [], failed: false });
    expect(commandMessages('error: Reconnected to the hypervisor\n')).toEqual({ lines: [], failed: false });
  });

  it('is a failure when the connection was lost and not got back, or the command failed after it', () => {
    expect(commandMessages('error: Disconnected from qemu:///system due to end of file\n')).toEqual({ lines: ['error: Disconnected from qemu:///system due to end of file'], failed: true });
    expect(commandMessages('error: Disconnected from qemu:///system due to keepalive timeout\nerror: Reconnected to the hypervisor\nerror: failed to get domain \'x\'\n')).toEqual({ lines: ["error: failed to get domain 'x'"], failed: true });
  });
});
