import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type Browser, chromium, type Page } from 'playwright-core';
import { consoleDir } from '../../src/console/console-files';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';

const CHROMIUM = '/usr/bin/chromium';
/** Written for a person to look at, never committed (.gitignore). */
const SCREENS = join(__dirname, '../../screenshots/console');

/**
 * The console in real Chromium against a real hub and agent with real backups: the operator logs in, sees what
 * is protected and what is not (breaches first), backs a VM up from it, and is sent back to the login on a 401.
 */
describe('the web console in Chromium', () => {
  const lab = new BackupLab();
  let browser: Browser | undefined;
  let page: Page;
  const base = () => `http://127.0.0.1:${lab.apiPort}`;

  beforeAll(async () => {
    // .ci/run installs Debian's chromium: a machine without it fails here rather than passing without asserting
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is needed (Debian package chromium; deployment/install-deps.sh)`);
    if (!existsSync(join(consoleDir(), 'index.html'))) throw new Error('the console is not built: npm run build');
    mkdirSync(SCREENS, { recursive: true });
    await lab.start(undefined, undefined, true);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    page = await browser.newPage();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    if (lab.hub) await lab.close();
  }, 60_000);

  async function axeViolations(): Promise<{ id: string; nodes: unknown[] }[]> {
    await page.addScriptTag({ content: readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8') });
    type Axe = { run: (opts: object) => Promise<{ violations: { id: string; nodes: { target: unknown }[] }[] }> };
    const result = await page.evaluate(async () => (globalThis as unknown as { axe: Axe }).axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } }));
    return result.violations.map((v) => ({ id: v.id, nodes: v.nodes.map((n) => n.target) }));
  }

  it('is served under /console/: deep links get the page, /api stays JSON, and the initial JavaScript is small', async () => {
    for (const path of ['/console/', '/console/jobs/6c7e1a1e-0f4e-4d2a-9a3c-1b2c3d4e5f60', '/console/vms/vm1']) {
      const res = await fetch(`${base()}${path}`);
      expect({ path, status: res.status, type: res.headers.get('content-type') }).toEqual({ path, status: 200, type: expect.stringContaining('text/html') });
      expect(await res.text()).toContain('<div id="app"></div>');
    }
    expect((await fetch(`${base()}/console`, { redirect: 'manual' })).headers.get('location')).toBe('/console/');
    const unknown = await fetch(`${base()}/api/v1/no-such-thing`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } });
    expect({ status: unknown.status, type: unknown.headers.get('content-type') }).toEqual({ status: 404, type: expect.stringContaining('application/json') });
    // the console's files hold no data; the API behind them still needs the token
    expect((await fetch(`${base()}/api/v1/vms`)).status).toBe(401);
    const scripts = readdirSync(join(consoleDir(), 'assets')).filter((f) => f.endsWith('.js'));
    const gzipped = scripts.reduce((n, f) => n + gzipSync(readFileSync(join(consoleDir(), 'assets', f))).length, 0);
    process.stdout.write(`console JavaScript: ${scripts.length} file(s), ${gzipped} bytes gzipped\n`);
    expect(gzipped).toBeLessThanOrEqual(60 * 1024);
  });

  it('logs in with the keyboard alone, refusing a token the hub does not know, and returns to the page asked for', async () => {
    await page.goto(`${base()}/console/vms/vm1?tab=points`);
    await page.waitForURL(/\/console\/login\?next=/);
    expect(new URL(page.url()).searchParams.get('next')).toBe('/vms/vm1?tab=points');
    expect(await axeViolations()).toEqual([]);
    await page.screenshot({ path: join(SCREENS, 'login.png') });
    await page.keyboard.press('Tab');
    await page.keyboard.type('not-a-token');
    await page.keyboard.press('Enter');
    await expect(page.getByRole('alert').textContent()).resolves.toBe('The hub does not know this token.');
    await page.getByLabel('API token').fill('');
    await page.getByLabel('API token').focus();
    await page.keyboard.type(LAB_TOKEN);
    await page.keyboard.press('Enter');
    await page.waitForURL(`${base()}/console/vms/vm1?tab=points`);
    // the token lives in this tab's session only, never in localStorage or the address
    expect(await page.evaluate(() => ({ local: (globalThis as any).localStorage.length, session: (globalThis as any).sessionStorage.getItem('sendense.token') }))).toEqual({ local: 0, session: LAB_TOKEN });
    expect(page.url()).not.toContain(LAB_TOKEN);
  });

  it('the protection overview lists every VM as the protection report does, breaches first, and backs a VM up', async () => {
    const point = (await lab.waitForJob(await lab.backup('full', 'vm1'), 60_000)).restorePointId;
    // an RPO of 36 s, already exceeded once the point is a minute old: vm1 is at risk, vm2 (no policy) unprotected
    const policy = await lab.api('POST', '/api/v1/policies', { name: 'tight', vms: { ids: ['vm1'] }, repositoryId: lab.repositoryId, schedule: { cron: '0 3 1 1 *', timezone: 'UTC' }, retention: { keepLast: 10 }, rpoHours: 0.01 });
    expect(policy.status).toBe(201);
    await lab.until(async () => (await lab.api('GET', '/api/v1/reports/protection')).body.vms.find((v: { vmId: string }) => v.vmId === 'vm1').status === 'at-risk', 90_000, 'vm1 to be at risk');
    await page.goto(`${base()}/console/`);
    const rows = page.locator('tbody tr');
    await rows.first().waitFor();
    const report = (await lab.api('GET', '/api/v1/reports/protection')).body.vms as { vmId: string; status: string; lastRestorePoint: { restorePointId: string } | null }[];
    const shown: { vmId: string; state: string; age: string }[] = await rows.evaluateAll((trs: any[]) => trs.map((tr) => ({ vmId: tr.getAttribute('data-vm'), state: tr.querySelector('td').getAttribute('data-state'), age: tr.querySelectorAll('td')[1].textContent })));
    expect(shown.map((r) => r.vmId).sort()).toEqual(report.map((v) => v.vmId).sort());
    expect(shown[0]).toEqual({ vmId: 'vm1', state: 'at-risk', age: expect.stringMatching(/^\d+ min ago$/) });
    expect(shown.find((r) => r.vmId === 'vm2')).toEqual({ vmId: 'vm2', state: 'unprotected', age: 'none' });
    expect(report.find((v) => v.vmId === 'vm1')!.lastRestorePoint!.restorePointId).toBe(point);
    expect(await axeViolations()).toEqual([]);
    await page.screenshot({ path: join(SCREENS, 'overview.png'), fullPage: true });

    await page.locator('tr[data-vm="vm1"]').getByRole('button', { name: 'Back up now' }).click();
    const notice = await page.getByRole('status').textContent();
    const jobId = /backup job ([0-9a-f-]{36}) requested/.exec(notice ?? '')?.[1];
    expect(jobId).toBeDefined();
    expect(await lab.waitForJob(jobId!, 60_000)).toMatchObject({ status: 'completed', vmId: 'vm1' });
    await expect(page.locator('strong[data-count="completed"]').textContent()).resolves.toMatch(/^\d+$/);
  }, 180_000);

  it('a token the hub stops knowing sends the operator back to the login, and then to the page they were on', async () => {
    await page.evaluate(() => (globalThis as any).sessionStorage.setItem('sendense.token', 'revoked-token'));
    await page.goto(`${base()}/console/`);
    await page.waitForURL(/\/console\/login\?next=%2F$/);
    await page.getByLabel('API token').fill(LAB_TOKEN);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(`${base()}/console/`);
    await page.locator('tr[data-vm="vm1"]').waitFor();
  });
});
