import { ConfigError } from '../config/hub-config';
import { POLICY_COMMANDS, policyCommand, POLICY_USAGE } from './commands/policy-cli';
import { REPORT_COMMANDS, reportCommand, REPORT_USAGE } from './commands/report-cli';
import { RESTORE_COMMANDS, restoreCommand, RESTORE_USAGE } from './commands/restore-cli';
import { REMOTE_COMMANDS, remoteCommand, REMOTE_USAGE, SYNC_COMMANDS, syncCommand, SYNC_USAGE } from './commands/sync-cli';
import { CLIENT_COMMANDS } from './client-commands';
import { takeHubFingerprint } from './hub-api';

// The hub (NestJS, TypeORM, pg), the agent (ssh2, pino) and the data mover are loaded only by the
// command that runs them: a client command or --help then starts in a few tens of milliseconds
// instead of a second (test/e2e/cli-startup.e2e.spec.ts keeps it so).

/** A command's own usage text under a heading of ours (theirs start with "usage:"). */
const section = (title: string, usage: string) => `${title}\n${usage.replace(/^usage:\n/, '')}`;

/** Every command and option the parsers accept; main.spec.ts checks that each command of COMMANDS is in it. */
export const USAGE = () => `usage: sendense <command>

  sendense hub                              start the hub (settings from the environment: docs/operations.md)
  sendense agent register --name NAME [--hub URL] [--hub-fingerprint SHA256:...]
                                            create the agent key and register it with the hub (a hub token in
                                            SENDENSE_TOKEN; --hub defaults to SENDENSE_HUB, else http://127.0.0.1:8082;
                                            an https:// hub's certificate pinned by its fingerprint, kept for agent run)
  sendense agent run (--inventory FILE | --libvirt [URI] | --vsphere URL ...) [--max-rate MiB]
                                            run the agent: connect to the hub, serve its backups and restores
                                            --inventory FILE  the powered-off VMs whose images FILE lists (or SENDENSE_INVENTORY)
                                            --libvirt [URI]   every domain of a libvirt host, running or shut off
                                                              (default qemu:///system; or SENDENSE_LIBVIRT_URI)
                                            --vsphere URL     every VM of a vCenter or ESXi host (https://vcenter/sdk; or
                                                              SENDENSE_VSPHERE_URL), with --vsphere-user USER and
                                                              --vsphere-password-file FILE, and --vsphere-thumbprint
                                                              SHA1|SHA256 for a certificate no system CA signed
                                                              (docs/operations.md, VMware)
                                            --max-rate MiB    each disk of a backup is read at most this many MiB/s
                                                              (or SENDENSE_MAX_RATE)
                                            both agent commands keep the agent's key and state in SENDENSE_AGENT_DIR
                                            (default ./var/agent)
  sendense nbd copy SRC DST [--bitmap NAME] [--requests N] [--request-size BYTES]
                                            copy between NBD exports (nbd://host:port/export,
                                            nbd+unix:///export?socket=PATH; details: sendense nbd copy --help)
  sendense repository add --name NAME --path DIR [--immutable-days N] [--key-file FILE] [--max-chain-depth N] [--layout qcow2|chunks]
                                            register a local repository (--immutable-days: each point
                                            can be neither deleted nor rewritten for N days; --key-file:
                                            its points are encrypted with the key in FILE;
                                            --max-chain-depth: points per chain before a synthetic full,
                                            2-1000, default 32; --layout chunks: every disk block stored
                                            once per repository, compressed, see docs/design/storage.md)
  sendense repository list                  the repositories, with a chunks repository's saving (protected,
                                            stored, deduplication, compression, garbage)
  sendense repository gc ID                 free a chunks repository's chunks no point names (admin token)
  sendense repository set ID --max-chain-depth N
                                            change a repository's points per chain (admin token needed);
                                            the next backup of a chain already that long is a synthetic full
  sendense backup start --vm ID --repository ID [--type full|incremental|auto] [--wait]
                                            start a backup (--wait: show its progress until it ends)
  sendense backup list [--vm ID] [--status S]
  sendense backup show JOB
  sendense backup cancel JOB
  sendense restore-points list --vm ID [--repository ID]
  sendense restore-points delete POINT      to the recycle bin for SENDENSE_DELETE_GRACE_DAYS (then its files go)
  sendense restore-points recycle-bin       the deleted points not yet purged
  sendense restore-points undelete POINT    back from the recycle bin, bit for bit (admin token needed)
  sendense restore-points purge POINT       remove a point's files now (admin token needed)
  sendense token rotate-admin               replace the admin token (admin token needed): prints the new one; the
                                            old one stops working at once on every hub sharing the database
  sendense help, sendense --help            this text

${section('Protection policies:', POLICY_USAGE)}
${section('Reports:', REPORT_USAGE)}
${section('Restores:', RESTORE_USAGE)}
${section('Hub-to-hub sync (docs/operations.md):', REMOTE_USAGE + SYNC_USAGE.replace(/^usage:\n/, ''))}
Client commands talk to SENDENSE_HUB (default http://127.0.0.1:8082) with SENDENSE_TOKEN, or the
admin token in $SENDENSE_DATA_DIR/admin.token. A hub serving HTTPS with its own certificate is pinned with
--hub-fingerprint SHA256:... (or SENDENSE_HUB_FINGERPRINT), as GET /api/v1/identity shows it; plain http://
is accepted for this host's loopback only.
`;

/**
 * Runs until a signal arrives, then stops cleanly. A terminal's Ctrl-C and a script's
 * SIGTERM often arrive together, so signals within the first seconds of a shutdown are
 * ignored; a later one (an impatient second Ctrl-C) exits at once.
 */
function untilSignal(stop: () => Promise<void>): void {
  let stoppingSince = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stoppingSince) {
      if (Date.now() - stoppingSince < FORCE_EXIT_AFTER_MS) return;
      process.stderr.write(`received ${signal} again; exiting without waiting\n`);
      process.exit(1);
    }
    stoppingSince = Date.now();
    stop().then(
      () => process.exit(0),
      (error) => {
        process.stderr.write(`shutdown failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

const FORCE_EXIT_AFTER_MS = 3_000;

const help = async () => void process.stdout.write(USAGE());

/**
 * Every command main() runs, by the words that name it: two words ("agent run") take the arguments after
 * both, one word ("restore", "policy", "report") the arguments after it, which its own parser dispatches
 * on (RESTORE_COMMANDS, POLICY_COMMANDS, REPORT_COMMANDS).
 */
export const COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  hub: async () => {
    const { startHub } = await import('../hub/start-hub');
    const hub = await startHub(process.env);
    untilSignal(hub.close);
  },
  'agent register': async (args) => (await import('../agent/agent-commands')).registerAgent(args, process.env),
  'agent run': async (args) => untilSignal(await (await import('../agent/agent-commands')).runAgent(args, process.env)),
  'nbd copy': async (args) => {
    const { nbdCopyCommand } = await import('../data-mover/nbd-copy.command');
    process.exitCode = await nbdCopyCommand(args);
  },
  ...Object.fromEntries(Object.entries(CLIENT_COMMANDS).map(([words, run]) => [words, (args: string[]) => run(args, process.env)])),
  restore: async (args) => void (process.exitCode = await restoreCommand(args, process.env)),
  policy: async (args) => void (process.exitCode = await policyCommand(args, process.env)),
  report: async (args) => void (process.exitCode = await reportCommand(args, process.env)),
  remote: async (args) => void (process.exitCode = await remoteCommand(args, process.env)),
  sync: async (args) => void (process.exitCode = await syncCommand(args, process.env)),
  help,
  '--help': help,
};

/** The nested tables, for the help test: which words follow each one-word command. */
export const SUBCOMMANDS: Record<string, Record<string, unknown>> = { restore: RESTORE_COMMANDS, policy: POLICY_COMMANDS, report: REPORT_COMMANDS, remote: REMOTE_COMMANDS, sync: SYNC_COMMANDS };

/** The command argv names and the arguments it gets, or null when argv names none. */
export function findCommand(argv: string[]): { run: (args: string[]) => Promise<void>; args: string[] } | null {
  const [command, sub] = argv;
  if (command === undefined) return { run: help, args: [] };
  const two = `${command} ${sub}`;
  if (sub !== undefined && Object.hasOwn(COMMANDS, two)) return { run: COMMANDS[two], args: argv.slice(2) };
  if (Object.hasOwn(COMMANDS, command)) return { run: COMMANDS[command], args: argv.slice(1) };
  return null;
}

export async function main(argv: string[]): Promise<void> {
  try {
    const found = findCommand(takeHubFingerprint(argv, process.env));
    if (found) return await found.run(found.args);
    process.stderr.write(`unknown command ${JSON.stringify(argv.join(' '))}\n\n${USAGE()}`);
    process.exitCode = 2;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`sendense: ${error.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`sendense: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
