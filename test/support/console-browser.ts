import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Locator, type Page } from 'playwright-core';
import { consoleDir } from '../../src/console/console-files';

const CHROMIUM = '/usr/bin/chromium';
/** Written for a person to look at, never committed (.gitignore). */
export const SCREENS = join(__dirname, '../../screenshots/console');

/** Debian's Chromium, headless. .ci/run installs it: a machine without it fails here rather than passing without asserting. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is needed (Debian package chromium; deployment/install-deps.sh)`);
  if (!existsSync(join(consoleDir(), 'index.html'))) throw new Error('the console is not built: npm run build');
  mkdirSync(SCREENS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

/**
 * WCAG 2 A and AA violations axe-core finds on the page as it is now, in the light colour scheme and then in the
 * dark one (the console ships both); each violation names its scheme. The page is left in the light scheme.
 */
export async function axeViolations(target: Page): Promise<{ id: string; scheme: string; nodes: unknown[] }[]> {
  // evaluated through the DevTools protocol: the console's Content-Security-Policy refuses an inline <script> (addScriptTag)
  await target.evaluate(readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8'));
  type Axe = { run: (opts: object) => Promise<{ violations: { id: string; nodes: { target: unknown }[] }[] }> };
  const found: { id: string; scheme: string; nodes: unknown[] }[] = [];
  for (const scheme of ['dark', 'light'] as const) {
    await target.emulateMedia({ colorScheme: scheme });
    const result = await target.evaluate(async () => (globalThis as unknown as { axe: Axe }).axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } }));
    found.push(...result.violations.map((v) => ({ id: v.id, scheme, nodes: v.nodes.map((n) => n.target) })));
  }
  return found;
}

/** Tab until the element the selector names has the focus, as a keyboard user would. */
export async function tabTo(tab: Page, selector: string): Promise<void> {
  const target = tab.locator(selector).first();
  await target.waitFor();
  for (let i = 0; i < 200; i++) {
    await tab.keyboard.press('Tab');
    if (await target.evaluate((el: any) => el === el.ownerDocument.activeElement)) return;
  }
  throw new Error(`${selector} was not reached with Tab`);
}

/**
 * An operator at the console, counting what a task costs them: every click and every key that submits is an
 * action; typing into a field is not (docs/console.md, "Task budgets"). Starts with a fresh login.
 */
export class Operator {
  actions = 0;
  private started = 0;

  private constructor(readonly tab: Page) {}

  static async logIn(browser: Browser, baseUrl: string, token: string, ready: string): Promise<Operator> {
    const tab = await browser.newPage();
    await tab.goto(`${baseUrl}/console/login?next=%2F`);
    await tab.getByLabel('API token').fill(token);
    await tab.getByRole('button', { name: 'Log in' }).click();
    await tab.locator(ready).first().waitFor();
    const operator = new Operator(tab);
    operator.started = Date.now();
    return operator;
  }

  async click(target: Locator | string): Promise<void> {
    await (typeof target === 'string' ? this.tab.locator(target).first() : target).click();
    this.actions++;
  }

  async press(key: 'Enter' | 'Space'): Promise<void> {
    await this.tab.keyboard.press(key);
    this.actions++;
  }

  /** Actions and seconds since the login, for the task's line in the test's output. */
  report(task: string): { actions: number; seconds: number } {
    const seconds = Math.round((Date.now() - this.started) / 100) / 10;
    process.stdout.write(`console task "${task}": ${this.actions} action(s), ${seconds} s\n`);
    return { actions: this.actions, seconds };
  }
}
