#!/usr/bin/env node
/*
 * The whole suite as `npm test` runs it: the two lanes of jest.config.js at once, each a jest process running its
 * files one after another. With one jest worker the machine's two cores sat about half idle through a CI run
 * (vmstat: 49 %), and two workers in one jest would put files that share libvirtd or a fixed NBD port range side by
 * side. Both lanes run to the end; the exit code is 0 only when both passed. With arguments (`npm test -- FILE`)
 * it is one jest over the files they name, as before lanes.
 */
const { spawn } = require('node:child_process');

const jest = require.resolve('jest/bin/jest');
const args = process.argv.slice(2);
const lanes = args.length ? [undefined] : ['system', 'units'];
const started = Date.now();
const children = [];

const runs = lanes.map(
  (lane) =>
    new Promise((resolve) => {
      const env = lane ? { ...process.env, SENDENSE_TEST_LANE: lane } : process.env;
      const child = spawn(process.execPath, [jest, ...(lane ? ['--maxWorkers=1'] : args)], { env, stdio: 'inherit' });
      children.push(child);
      child.on('exit', (code, signal) => resolve({ lane, code, signal, seconds: (Date.now() - started) / 1000 }));
    }),
);

// ^C reaches the jests through the terminal's process group; a signal sent to this runner alone is passed on
for (const signal of ['SIGTERM', 'SIGHUP']) process.on(signal, () => children.forEach((child) => child.kill(signal)));

Promise.all(runs).then((results) => {
  const passed = results.every((r) => r.code === 0);
  if (lanes[0] !== undefined) {
    for (const { lane, code, signal, seconds } of results) {
      process.stderr.write(`lane ${lane}: ${code === 0 ? 'passed' : `FAILED (${signal ?? `exit code ${code}`})`} after ${seconds.toFixed(0)} s\n`);
    }
  }
  process.exit(passed ? 0 : 1);
});
