import { COMMANDS, findCommand, SUBCOMMANDS, USAGE } from './main';

/** Every command line the parsers dispatch, as the words that name it ("agent run", "restore mount", "hub"). */
const dispatched = Object.keys(COMMANDS).flatMap((words) => (SUBCOMMANDS[words] ? Object.keys(SUBCOMMANDS[words]).map((sub) => `${words} ${sub}`) : [words]));
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('sendense --help', () => {
  const help = USAGE();

  it.each(dispatched)('lists "sendense %s"', (words) => {
    expect(help).toMatch(new RegExp(`(^|\\s)sendense ${escape(words)}(?=\\s|,|$)`, 'm'));
  });

  it('lists no command the parsers do not dispatch', () => {
    const listed = [...help.matchAll(/^\s*sendense ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?/gm)].map(([, word, sub]) => (sub !== undefined && dispatched.includes(`${word} ${sub}`) ? `${word} ${sub}` : word));
    expect(listed.length).toBeGreaterThan(20);
    expect(listed.filter((words) => !dispatched.includes(words))).toEqual([]);
  });

  it('covers the commands the issue found missing, and the nested ones', () => {
    expect(dispatched).toEqual(expect.arrayContaining(['agent run', 'report protection', 'restore vm', 'policy add', 'backup cancel']));
    expect(help).toMatch(/sendense agent run \(--inventory FILE \| --libvirt \[URI\] \| --vsphere URL \.\.\.\) \[--max-rate MiB\]/);
    expect(help).toMatch(/--vsphere-password-file FILE/);
    expect(help).toMatch(/sendense report protection \[--at TIMESTAMP\] \[--json\]/);
  });
});

describe('findCommand', () => {
  it('takes the arguments after a two-word command, and after a one-word one', () => {
    expect(findCommand(['agent', 'run', '--libvirt'])).toEqual({ run: COMMANDS['agent run'], args: ['--libvirt'] });
    expect(findCommand(['restore', 'ls', 'm1'])).toEqual({ run: COMMANDS.restore, args: ['ls', 'm1'] });
    expect(findCommand(['hub'])).toEqual({ run: COMMANDS.hub, args: [] });
  });

  it('prints the help without a command, and knows no other words', () => {
    expect(findCommand([])?.run).toBe(COMMANDS.help);
    expect(findCommand(['agent'])).toBeNull();
    expect(findCommand(['constructor'])).toBeNull();
    expect(findCommand(['backup', 'toString'])).toBeNull();
  });
});
