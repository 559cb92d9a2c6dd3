import { runBackupBench } from './backup.bench';
import { runCliBench } from './cli.bench';
import { runConsoleBench } from './console.bench';
import { runEventStoreBench } from './event-store.bench';
import { runExportsBench } from './exports.bench';
import { runRestoreBench } from './restore.bench';
import { runDatapathBench } from './datapath.bench';
import { runVerifyBench } from './verify.bench';
import { runLiveBench } from './live.bench';
import { runRestoreVmBench } from './restore-vm.bench';
import { runPeerBench } from './peer.bench';
import { runFleetBench } from './fleet.bench';
import { runChainBench } from './chain.bench';
import { runSyncBench } from './sync.bench';
import { runEncryptionBench } from './encryption.bench';
import { runVsphereBench } from './vsphere.bench';
import { runTlsSendBench } from './tls-send.bench';
import { runStoreBench } from './store.bench';
import { runChunkTargetBench } from './chunk-target.bench';
import { runDownloadBench } from './download.bench';

const BENCHES: Record<string, () => Promise<void>> = {
  cli: runCliBench,
  'event-store': runEventStoreBench,
  exports: runExportsBench,
  restore: runRestoreBench,
  datapath: runDatapathBench,
  verify: runVerifyBench,
  backup: runBackupBench,
  live: runLiveBench,
  'restore-vm': runRestoreVmBench,
  console: runConsoleBench,
  peer: runPeerBench,
  fleet: runFleetBench,
  chain: runChainBench,
  sync: runSyncBench,
  encryption: runEncryptionBench,
  vsphere: runVsphereBench,
  'tls-send': runTlsSendBench,
  store: runStoreBench,
  'chunk-target': runChunkTargetBench,
  download: runDownloadBench,
};

async function main(): Promise<void> {
  const names = process.argv.slice(2);
  const unknown = names.filter((n) => !BENCHES[n]);
  if (unknown.length) {
    process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; available: ${Object.keys(BENCHES).join(', ')}\n`);
    process.exit(2);
  }
  for (const name of names.length ? names : Object.keys(BENCHES)) {
    process.stdout.write(`\n== ${name} ==\n`);
    await BENCHES[name]();
  }
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
