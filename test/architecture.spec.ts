import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

/**
 * The shape every feature has, checked on the source itself: one write path (only command
 * handlers append), one read path (controllers ask the QueryBus; SQL lives beside its read
 * model) and one import direction (hub → projections → features → platform).
 */
const ROOT = join(__dirname, '..');

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts') && !entry.name.endsWith('.d.ts') ? [path.split(sep).join('/')] : [];
  });
}

const code = (file: string) => readFileSync(join(ROOT, file), 'utf8');
const PRODUCT = [...sources('src'), ...sources('projections')].filter((f) => !f.endsWith('.bench.ts'));
const PLATFORM = [
  'src/event-store/',
  'src/eventing/',
  'src/projection-runner/',
  'src/database/',
  'src/http/',
  'src/config/',
  'src/operations/',
  // shared by the hub and the agent: the wire contract and the adapters of the tools both run
  'src/wire/',
  'src/qemu/',
  'src/process/',
];
/** Entry points compose like the hub does: the CLI starts the hub or the agent. */
const ENTRY_POINTS = ['src/hub/', 'src/cli/'];
/** Everything under src/ that is neither the composition root nor the shared platform (nor a program's entry point). */
const FEATURES = PRODUCT.filter((f) => f.startsWith('src/') && !ENTRY_POINTS.some((p) => f.startsWith(p)) && !PLATFORM.some((p) => f.startsWith(p)));

function importsOf(file: string): string[] {
  return [...code(file).matchAll(/(?:from|import\()\s*'([^']+)'/g)].map((m) => m[1]).filter((s) => s.startsWith('.')).map((s) => relative(ROOT, join(ROOT, file, '..', s)).split(sep).join('/'));
}

describe('architecture', () => {
  const handlers = PRODUCT.filter((f) => f.endsWith('.handler.ts'));

  it('has a command handler per state change, each one decorated and one command per file', () => {
    expect(handlers.length).toBeGreaterThanOrEqual(30);
    for (const file of handlers) {
      const text = code(file);
      const decorated = text.match(/@CommandHandler\(/g) ?? [];
      expect({ file, handlers: decorated.length }).toEqual({ file, handlers: 1 });
    }
  });

  /** Whoever holds the AggregateRepository or the EventStore under some name and calls execute/append on it. */
  function appends(file: string): boolean {
    const text = code(file);
    const holders = (type: string) => [...text.matchAll(new RegExp(`(\\w+)\\??:\\s*${type}\\b`, 'g'))].map((m) => m[1]);
    return [...holders('AggregateRepository').map((n) => `${n}.execute(`), ...holders('EventStore').map((n) => `${n}.append(`)].some((call) => text.includes(call));
  }

  it('lets nothing but a command handler append to the event store', () => {
    const appenders = PRODUCT.filter(appends);
    expect(appenders.filter((f) => f.endsWith('.handler.ts')).length).toBe(handlers.length);
    const allowed = (f: string) => f.endsWith('.handler.ts') || f.startsWith('src/event-store/') || f === 'src/eventing/aggregate-repository.ts';
    expect(appenders.filter((f) => !allowed(f))).toEqual([]);
  });

  it('keeps SQL, repositories and aggregate state out of controllers', () => {
    const controllers = PRODUCT.filter((f) => f.endsWith('.controller.ts'));
    expect(controllers.length).toBeGreaterThan(5);
    const offenders = controllers.filter((f) => /\bDataSource\b|\.query\(|getRepository\(|AggregateRepository|from 'typeorm'/.test(code(f)));
    expect(offenders).toEqual([]);
  });

  it('keeps SQL beside its read model', () => {
    const sql = PRODUCT.filter((f) => /\b(SELECT|INSERT INTO|UPDATE|DELETE FROM)\b[^'`]*\b(rm_|FROM|SET|WHERE)\b/.test(code(f)) || /\bgetRepository\(/.test(code(f)));
    const allowed = (f: string) => f.startsWith('projections/') || PLATFORM.some((p) => f.startsWith(p));
    expect(sql.filter((f) => !allowed(f))).toEqual([]);
  });

  it('points imports one way: features never import projections/ or src/hub', () => {
    const offenders = FEATURES.flatMap((f) => importsOf(f).filter((i) => i.startsWith('projections/') || i.startsWith('src/hub/')).map((i) => `${f} -> ${i}`));
    expect(offenders).toEqual([]);
  });

  it('keeps the platform free of features', () => {
    const platform = PRODUCT.filter((f) => PLATFORM.some((p) => f.startsWith(p)));
    const offenders = platform.flatMap((f) => importsOf(f).filter((i) => FEATURES.includes(`${i}.ts`) || i.startsWith('projections/') || i.startsWith('src/hub/')).map((i) => `${f} -> ${i}`));
    expect(offenders).toEqual([]);
  });

  it('keeps the hub from importing the agent program: they share only the wire contract', () => {
    const hubSide = PRODUCT.filter((f) => !f.startsWith('src/agent/') && !f.startsWith('src/cli/'));
    const offenders = hubSide.flatMap((f) => importsOf(f).filter((i) => i.startsWith('src/agent/')).map((i) => `${f} -> ${i}`));
    expect(offenders).toEqual([]);
  });
});
