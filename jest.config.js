/** Unit specs sit next to the code; *.int.spec.ts and *.e2e.spec.ts use real Postgres and real tools. */
const { readdirSync, readFileSync } = require('node:fs');
const { join, relative } = require('node:path');

/*
 * `npm test` runs the suite in two lanes at once (test/lanes.js), each a jest process running its files one after
 * another. The files that need libvirtd share it (some stop and restart it, the first to need it starts it and
 * stops it again), so they all run in the system lane, found by what they import; a few other long files join
 * them so that the lanes take about as long. Anything else two files might share across lanes is theirs alone: a
 * BackupLab's NBD ports depend on its lane, and every other fixed port range of the tests is used by one file.
 * SENDENSE_TEST_LANE picks one lane; unset, jest runs every file.
 */
const LIBVIRT = /from '[./]*(?:test\/)?(?:support\/libvirt-(?:host|lab)|fixtures\/libvirt\/libvirt-guest)'/;
// about 1,300 s each in a CI run of 2,460 s of files on 2 cores (2026-11-28: system 1,355 s and units 1,249 s with
// chain-depth's 55 s in the system lane); the slowest machines took 2,050 s a lane
const BALANCE = [...['console', 'policies', 'sync', 'retention-in-use', 'hub-process'].map((name) => `test/e2e/${name}.e2e.spec.ts`), 'src/repositories/repositories.e2e.spec.ts'];

function specs(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : specs(path);
    return entry.name.endsWith('.spec.ts') ? [path] : [];
  });
}

function systemLane() {
  const files = ['src', 'projections', 'test'].flatMap((root) => specs(join(__dirname, root)));
  return [...files.filter((file) => LIBVIRT.test(readFileSync(file, 'utf8'))).map((file) => relative(__dirname, file)), ...BALANCE];
}

const lane = process.env.SENDENSE_TEST_LANE;
if (lane !== undefined && lane !== 'system' && lane !== 'units') throw new Error(`SENDENSE_TEST_LANE must be system or units, got ${JSON.stringify(lane)}`);
const system = lane ? systemLane() : [];
const escape = (path) => path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src', '<rootDir>/projections', '<rootDir>/test'],
  testMatch: lane === 'system' ? system.map((file) => `<rootDir>/${file}`) : ['**/*.spec.ts'],
  testPathIgnorePatterns: ['/node_modules/', ...(lane === 'units' ? system.map((file) => `<rootDir>/${escape(file)}$`) : [])],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  moduleFileExtensions: ['ts', 'js', 'json'],
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  testTimeout: 60000,
};
