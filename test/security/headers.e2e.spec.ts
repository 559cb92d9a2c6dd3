import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { consoleDir } from '../../src/console/console-files';
import { startTestHub, TEST_ADMIN_TOKEN, TestHub } from '../support/test-hub';

const CHROMIUM = '/usr/bin/chromium';

/** The directives a browser must be told, whatever else the policy says. */
const REQUIRED_CSP = ["default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"];

/**
 * What a browser is told on every answer of a real hub, so that script injected into the console (a name, a file
 * listing, an event's data shown as text and escaped wrong some day) does not run, the console is never framed,
 * and a downloaded file is never sniffed into HTML.
 */
describe('browser security headers on every answer', () => {
  let hub: TestHub;
  let base: string;
  let browser: Browser | undefined;

  beforeAll(async () => {
    if (!existsSync(join(consoleDir(), 'index.html'))) throw new Error('the console is not built: npm run build');
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is needed (Debian package chromium; deployment/install-deps.sh)`);
    hub = await startTestHub();
    base = await hub.url();
  });
  afterAll(async () => {
    await browser?.close();
    await hub?.close();
  });

  it('the console, its assets, the API (answers, refusals, 404s) and the OpenAPI UI carry CSP, nosniff, no-referrer and DENY, and no X-Powered-By', async () => {
    const script = readdirSync(join(consoleDir(), 'assets')).find((f) => f.endsWith('.js'))!;
    const admin = { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
    const answers: [string, number, Record<string, string>][] = [
      ['/console/', 200, {}],
      ['/console/login?next=%2F', 200, {}],
      [`/console/assets/${script}`, 200, {}],
      ['/api/v1/health', 200, {}],
      ['/api/v1/session', 401, {}],
      ['/api/v1/tokens', 200, admin],
      ['/api/v1/no-such-route', 404, admin],
      ['/api/v1/audit/correlations/nothing-carries-this', 404, admin],
      ['/api/docs', 200, {}],
    ];
    for (const [path, status, headers] of answers) {
      const res = await fetch(base + path, { headers, redirect: 'manual' });
      await res.arrayBuffer();
      const csp = res.headers.get('content-security-policy') ?? '';
      expect({ path, status: res.status, poweredBy: res.headers.get('x-powered-by') }).toEqual({ path, status, poweredBy: null });
      expect({ path, missing: REQUIRED_CSP.filter((d) => !csp.split(/;\s*/).includes(d)) }).toEqual({ path, missing: [] });
      expect({ path, nosniff: res.headers.get('x-content-type-options'), referrer: res.headers.get('referrer-policy'), frame: res.headers.get('x-frame-options') }).toEqual({ path, nosniff: 'nosniff', referrer: 'no-referrer', frame: 'DENY' });
    }
  });

  it('in Chromium the console logs in and shows its pages under the policy without a violation, and a script injected into it does not run', async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    const page = await browser.newPage();
    const reported: string[] = [];
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) reported.push(message.text());
    });
    await page.addInitScript(() => {
      const seen: string[] = ((globalThis as any).__violations = []);
      (globalThis as any).document.addEventListener('securitypolicyviolation', (e: any) => seen.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    await page.goto(`${base}/console/`);
    await page.waitForURL(/\/console\/login/);
    await page.getByLabel('API token').fill(TEST_ADMIN_TOKEN);
    await page.keyboard.press('Enter');
    await page.waitForURL(`${base}/console/`);
    for (const path of ['/console/audit', '/console/infrastructure', '/console/policies', '/console/']) {
      await page.goto(base + path);
      await page.locator('main').waitFor();
      await page.waitForTimeout(500);
    }
    expect(await page.evaluate(() => (globalThis as any).__violations)).toEqual([]);
    expect(reported).toEqual([]);

    // what an injection would add: an inline script, an inline event handler
    await page.evaluate(() => {
      const document = (globalThis as any).document;
      const script = document.createElement('script');
      script.textContent = 'globalThis.__pwned = 1';
      document.body.append(script);
      document.body.insertAdjacentHTML('beforeend', '<img src="data:," onload="globalThis.__pwnedToo = 1">');
    });
    await page.waitForTimeout(300);
    expect(await page.evaluate(() => [(globalThis as any).__pwned, (globalThis as any).__pwnedToo])).toEqual([undefined, undefined]);
    expect(await page.evaluate(() => (globalThis as any).__violations.map((v: string) => v.split(' ')[0]))).toEqual(['script-src-elem', 'script-src-attr']);

    reported.length = 0;
    // the OpenAPI UI (its own policy: inline styles allowed) renders its operations without a violation either
    await page.goto(`${base}/api/docs`);
    await page.locator('.swagger-ui .information-container').waitFor();
    expect(await page.evaluate(() => (globalThis as any).__violations)).toEqual([]);
    expect(reported).toEqual([]);
  }, 60_000);
});
