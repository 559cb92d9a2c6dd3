import { INestApplication } from '@nestjs/common';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { hashToken } from '../../src/auth/token-hash';
import { consoleDir } from '../../src/console/console-files';
import { loadHubConfig } from '../../src/config/hub-config';
import { createHubApp } from '../../src/hub/create-hub-app';
import { ensureApiCertificate } from '../../src/http/api-certificate';
import { eventCount, startTestHub, TEST_ADMIN_TOKEN, TestHub } from '../support/test-hub';

const CHROMIUM = '/usr/bin/chromium';
const COOKIE = 'sendense_session';

/**
 * The console holds no token a script can read: a log-in trades the token for an HttpOnly, SameSite=Strict session
 * cookie, every state change the cookie carries needs the session's CSRF header and a same-origin request, and the
 * cookie dies with its token. A real hub, real Chromium, a page of another origin posting a real form.
 */
describe('the console session: an HttpOnly cookie, CSRF-checked, bound to its token', () => {
  let hub: TestHub;
  let base: string;
  let browser: Browser;
  let attacker: Server;
  let attackerPort: number;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    if (!existsSync(join(consoleDir(), 'index.html'))) throw new Error('the console is not built: npm run build');
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is needed (Debian package chromium; deployment/install-deps.sh)`);
    hub = await startTestHub();
    base = await hub.url();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    // another site's page: a form that posts itself to the hub as soon as it loads (its origin: this server's port)
    attacker = createServer((req, res) => {
      const target = new URL(req.url!, 'http://x').searchParams.get('target')!;
      res.setHeader('Content-Type', 'text/html');
      res.end(
        `<!doctype html><form id="f" method="POST" action="${target}/api/v1/tokens"><input name="name" value="csrf-victim"><input name="role" value="admin"></form>` +
          `<script>document.getElementById('f').submit()</script>`,
      );
    });
    await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
    attackerPort = (attacker.address() as AddressInfo).port;
  });
  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await new Promise((resolve) => attacker?.close(resolve));
    await hub?.close();
  });

  /** A fresh browser (its own cookies), logged in through the login page as a person would, every URL it visits kept. */
  async function logIn(token: string, origin = base, options: { ignoreHTTPSErrors?: boolean } = {}): Promise<{ page: Page; context: BrowserContext; visited: string[] }> {
    const context = await browser.newContext(options);
    contexts.push(context);
    const page = await context.newPage();
    const visited: string[] = [];
    page.on('request', (r) => visited.push(r.url()));
    page.on('framenavigated', (f) => visited.push(f.url()));
    await page.goto(`${origin}/console/`);
    await page.waitForURL(/\/console\/login/);
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('header nav').waitFor();
    return { page, context, visited };
  }

  async function sessionCookie(context: BrowserContext) {
    const cookie = (await context.cookies()).find((c) => c.name === COOKIE);
    if (!cookie) throw new Error('no session cookie');
    return cookie;
  }

  const issue = async (name: string, role = 'operator') => (await hub.admin(hub.http().post('/api/v1/tokens')).send({ name, role }).expect(201)).body as { tokenId: string; token: string };
  const tokenNames = async () => (await hub.admin(hub.http().get('/api/v1/tokens')).expect(200)).body.map((t: { name: string }) => t.name) as string[];

  it('after a log-in through the login page no token is in localStorage, sessionStorage, document.cookie or any URL; the cookie is HttpOnly and SameSite=Strict; a reload stays logged in; log-out ends the cookie', async () => {
    const { token } = await issue('morning-operator');
    const { page, context, visited } = await logIn(token);
    await page.goto(`${base}/console/audit`);
    await page.locator('main').waitFor();
    const stored = await page.evaluate(() => {
      const g = globalThis as any;
      const all = (s: any) => Array.from({ length: s.length }, (_, i) => `${s.key(i)}=${s.getItem(s.key(i))}`).join('\n');
      return { local: all(g.localStorage), session: all(g.sessionStorage), cookie: g.document.cookie as string, href: g.location.href as string };
    });
    expect(stored).toEqual({ local: '', session: '', cookie: '', href: `${base}/console/audit` });
    expect(visited.length).toBeGreaterThan(3);
    expect(visited.filter((url) => url.includes(token))).toEqual([]);

    const cookie = await sessionCookie(context);
    expect({ httpOnly: cookie.httpOnly, sameSite: cookie.sameSite, secure: cookie.secure, path: cookie.path }).toEqual({ httpOnly: true, sameSite: 'Strict', secure: false, path: '/' });
    // the cookie is a random session id of its own: the token is in no part of it
    expect(cookie.value).not.toContain(token);
    expect(cookie.value).not.toContain(hashToken(token));

    // a reload asks the hub who the cookie is: still logged in, the same role
    await page.reload();
    await page.locator('header nav').waitFor();
    expect(page.url()).toBe(`${base}/console/audit`);
    expect((await fetch(`${base}/api/v1/session`, { headers: { Cookie: `${COOKIE}=${cookie.value}` } })).status).toBe(200);

    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(/\/console\/login/);
    expect((await context.cookies()).filter((c) => c.name === COOKIE)).toEqual([]);
    // the old cookie, replayed, is refused: the session ended on the hub, not only in the browser
    expect((await fetch(`${base}/api/v1/session`, { headers: { Cookie: `${COOKIE}=${cookie.value}` } })).status).toBe(401);
    await page.goto(`${base}/console/`);
    await page.waitForURL(/\/console\/login/);
  }, 60_000);

  it("a form of another origin posting to POST /api/v1/tokens with the admin's cookie is refused (403) and nothing is appended; from another site the cookie is not even sent (401)", async () => {
    const { context } = await logIn(TEST_ADMIN_TOKEN);
    const before = await eventCount(hub.db);
    const page = await context.newPage();
    for (const [attackerOrigin, status] of [
      // the same site (127.0.0.1), another origin (port): SameSite lets the cookie go, the CSRF checks must refuse it
      [`http://127.0.0.1:${attackerPort}`, 403],
      // another site: SameSite=Strict keeps the cookie home
      [`http://localhost:${attackerPort}`, 401],
    ] as const) {
      const answer = page.waitForResponse((r) => r.url() === `${base}/api/v1/tokens` && r.request().method() === 'POST');
      await page.goto(`${attackerOrigin}/?target=${encodeURIComponent(base)}`);
      expect({ attackerOrigin, status: (await answer).status() }).toEqual({ attackerOrigin, status });
    }
    expect(await eventCount(hub.db)).toBe(before);
    expect(await tokenNames()).not.toContain('csrf-victim');
  }, 60_000);

  it("a request of the console's own origin with the cookie but without X-Sendense-CSRF is refused (403); with it, it goes; an Origin or Sec-Fetch-Site of elsewhere is refused even with it", async () => {
    const { page, context } = await logIn(TEST_ADMIN_TOKEN);
    const before = await eventCount(hub.db);
    const post = (name: string, csrf: boolean) =>
      page.evaluate(
        async ([name, csrf]) => {
          const who = (await (await fetch('/api/v1/session')).json()) as { csrfToken: string };
          const headers: Record<string, string> = { 'Content-Type': 'application/json', ...(csrf ? { 'X-Sendense-CSRF': who.csrfToken } : {}) };
          const res = await fetch('/api/v1/tokens', { method: 'POST', headers, body: JSON.stringify({ name }) });
          return { status: res.status, message: ((await res.json()) as { message: unknown }).message };
        },
        [name, csrf] as const,
      );
    expect(await post('no-csrf-header', false)).toEqual({ status: 403, message: 'a request with the console session must carry its X-Sendense-CSRF header' });
    expect(await eventCount(hub.db)).toBe(before);
    expect((await post('with-csrf-header', true)).status).toBe(201);
    expect(await tokenNames()).toEqual(expect.arrayContaining(['with-csrf-header']));
    expect(await tokenNames()).not.toContain('no-csrf-header');

    // a client that forges the header but says where it comes from (a browser always does) is refused as well
    const cookie = await sessionCookie(context);
    const { csrfToken } = (await (await fetch(`${base}/api/v1/session`, { headers: { Cookie: `${COOKIE}=${cookie.value}` } })).json()) as { csrfToken: string };
    const forged = async (extra: Record<string, string>) =>
      (await fetch(`${base}/api/v1/tokens`, { method: 'POST', headers: { Cookie: `${COOKIE}=${cookie.value}`, 'X-Sendense-CSRF': csrfToken, 'Content-Type': 'application/json', ...extra }, body: JSON.stringify({ name: 'forged' }) })).status;
    const after = await eventCount(hub.db);
    expect(await forged({ Origin: 'http://evil.example' })).toBe(403);
    expect(await forged({ 'Sec-Fetch-Site': 'cross-site' })).toBe(403);
    expect(await forged({ 'X-Sendense-CSRF': 'A'.repeat(43) })).toBe(403);
    expect(await eventCount(hub.db)).toBe(after);
  }, 60_000);

  it('revoking the token behind a session: its cookie answers 401 within a second, and the live stream it opened is cut', async () => {
    const { tokenId, token } = await issue('evening-operator');
    const { page } = await logIn(token);
    await page.evaluate(() => {
      const g = globalThis as any;
      g.__streamEnded = null;
      void fetch('/api/v1/live').then(async (res) => {
        const reader = res.body!.getReader();
        g.__streamOpen = res.status;
        try {
          while (!(await reader.read()).done);
        } catch {
          // a cut connection is an end as well
        }
        g.__streamEnded = Date.now();
      });
    });
    await page.waitForFunction(() => (globalThis as any).__streamOpen === 200);
    expect(await page.evaluate(async () => (await fetch('/api/v1/session')).status)).toBe(200);

    await hub.admin(hub.http().delete(`/api/v1/tokens/${tokenId}`)).expect(204);
    const revokedAt = Date.now();
    const refusedAfter = await page.evaluate(async () => {
      const start = Date.now();
      while ((await fetch('/api/v1/session')).status !== 401) await new Promise((r) => setTimeout(r, 50));
      return Date.now() - start;
    });
    expect(refusedAfter).toBeLessThan(1000);
    await page.waitForFunction(() => (globalThis as any).__streamEnded !== null, undefined, { timeout: 3000 });
    expect((await page.evaluate(() => (globalThis as any).__streamEnded as number)) - revokedAt).toBeLessThan(1000);
    // and the console, asked for a page, goes back to the login
    await page.goto(`${base}/console/jobs`);
    await page.waitForURL(/\/console\/login/);
  }, 60_000);

  describe('on a hub serving HTTPS (sharing the database)', () => {
    let app: INestApplication;
    let dataDir: string;
    let secureBase: string;

    beforeAll(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'sendense-session-tls-'));
      const config = loadHubConfig({ SENDENSE_LOG_LEVEL: 'warn', SENDENSE_DATA_DIR: dataDir, SENDENSE_SSH_PORT: '0', SENDENSE_SSH_BIND: '127.0.0.1', SENDENSE_DELETE_GRACE_DAYS: '0' });
      const apiCertificate = await ensureApiCertificate(config);
      app = await createHubApp({ config, connection: hub.db.connection, dataSource: hub.db.dataSource, store: hub.db.store, adminTokenHash: hashToken(TEST_ADMIN_TOKEN), apiCertificate });
      await app.listen(0, '127.0.0.1');
      secureBase = `https://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await app?.close();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('the session cookie is Secure as well, and a session opened on one hub works on the other hub of the same database', async () => {
      const { context } = await logIn(TEST_ADMIN_TOKEN, secureBase, { ignoreHTTPSErrors: true });
      const cookie = await sessionCookie(context);
      expect({ httpOnly: cookie.httpOnly, sameSite: cookie.sameSite, secure: cookie.secure }).toEqual({ httpOnly: true, sameSite: 'Strict', secure: true });
      const who = await fetch(`${base}/api/v1/session`, { headers: { Cookie: `${COOKIE}=${cookie.value}` } });
      expect({ status: who.status, body: await who.json() }).toEqual({ status: 200, body: { actor: 'admin', role: 'admin', tenantId: null, csrfToken: expect.any(String) } });
    }, 60_000);
  });

  it('rotating the admin token away ends the sessions opened with it (checked last: the other tests use it)', async () => {
    const { page } = await logIn(TEST_ADMIN_TOKEN);
    expect(await page.evaluate(async () => (await fetch('/api/v1/session')).status)).toBe(200);
    await hub.admin(hub.http().post('/api/v1/tokens/admin/rotate')).expect(201);
    expect(await page.evaluate(async () => (await fetch('/api/v1/session')).status)).toBe(401);
  }, 60_000);
});
