import { ConfigError } from '../config/hub-config';
import { restoreCommand, RESTORE_USAGE } from '../restore/restore-cli';
import { runClientCommand } from './client-commands';

// The hub (NestJS, TypeORM, pg), the agent (ssh2, pino) and the data mover are loaded only by the
// command that runs them: a client command or --help then starts in a few tens of milliseconds
// instead of a second (test/e2e/cli-startup.e2e.spec.ts keeps it so).

const USAGE = () => `usage: sendense <command>

  hub                                       start the hub (REST API on SENDENSE_API_BIND:SENDENSE_API_PORT)
  agent register --hub URL --name NAME      create the agent key and register it (token in SENDENSE_TOKEN)
  agent run --inventory FILE | --libvirt [URI] [--max-rate MiB]
                                            run the agent: connect to the hub and serve backups (--max-rate: each disk's reads in MiB/s)
  nbd copy SRC DST [--bitmap NAME] [--requests N] [--request-size BYTES]
                                            copy between NBD exports (nbd://host:port/export, nbd+unix:///export?socket=PATH)
  repository add --name NAME --path DIR     register a local repository
  backup start --vm ID --repository ID [--type full|incremental|auto] [--wait]
  backup list [--vm ID] [--status S] | backup show JOB | backup cancel JOB
  restore-points list --vm ID [--repository ID]
  policy add|list|show|edit|run|remove      protection policies (sendense policy help for the options)
${RESTORE_USAGE}
Client commands talk to SENDENSE_HUB (default http://127.0.0.1:8082) with SENDENSE_TOKEN, or the
admin token in $SENDENSE_DATA_DIR/admin.token.
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

export async function main(argv: string[]): Promise<void> {
  const [command, sub, ...rest] = argv;
  try {
    if (command === 'hub') {
      const { startHub } = await import('../hub/start-hub');
      const hub = await startHub(process.env);
      return untilSignal(hub.close);
    }
    if (command === 'agent' && sub === 'register') return await (await import('../agent/agent-commands')).registerAgent(rest, process.env);
    if (command === 'agent' && sub === 'run') return untilSignal(await (await import('../agent/agent-commands')).runAgent(rest, process.env));
    if (command === 'restore') {
      process.exitCode = await restoreCommand(argv.slice(1), process.env);
      return;
    }
    if (command === 'nbd' && sub === 'copy') {
      const { nbdCopyCommand } = await import('../data-mover/nbd-copy.command');
      process.exitCode = await nbdCopyCommand(rest);
      return;
    }
    if (command === 'policy') return void (process.exitCode = await (await import('../policies/policy-cli')).policyCommand(argv.slice(1), process.env));
    if (command === 'report') return void (process.exitCode = await (await import('../policies/report-cli')).reportCommand(argv.slice(1), process.env));
    if (command === undefined || command === 'help' || command === '--help') {
      process.stdout.write(USAGE());
      return;
    }
    if (await runClientCommand(argv, process.env)) return;
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
