import { ConfigError } from '../config/hub-config';
import { startHub } from '../hub/start-hub';

const USAGE = `usage: sendense <command>

commands:
  hub        start the hub (REST API on SENDENSE_API_BIND:SENDENSE_API_PORT)
`;

async function runHub(): Promise<void> {
  const hub = await startHub(process.env);
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`received ${signal} again; exiting without waiting\n`);
      process.exit(1);
    }
    stopping = true;
    hub.close().then(
      () => process.exit(0),
      (error) => {
        process.stderr.write(`shutdown failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

export async function main(argv: string[]): Promise<void> {
  const [command] = argv;
  try {
    switch (command) {
      case 'hub':
        return await runHub();
      case undefined:
      case 'help':
      case '--help':
        process.stdout.write(USAGE);
        return;
      default:
        process.stderr.write(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
        process.exitCode = 2;
    }
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`sendense: ${error.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`sendense: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
