import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, sep } from 'node:path';
import * as ts from 'typescript';

/**
 * The shape every feature has, checked on the source itself: one write path (only command
 * handlers append), one read path (controllers ask the QueryBus; SQL lives beside its read
 * model) and one import direction (hub → projections → features → platform). Each rule reads
 * a file's syntax tree and takes (file, text), so the fixtures below go through the same code.
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
const PRODUCT_FILES = new Set(PRODUCT);
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
const isPlatform = (f: string) => PLATFORM.some((p) => f.startsWith(p));
/** Everything under src/ that is neither the composition root nor the shared platform (nor a program's entry point). */
const isFeature = (f: string) => f.startsWith('src/') && !ENTRY_POINTS.some((p) => f.startsWith(p)) && !isPlatform(f);
const isHandler = (f: string) => f.endsWith('.handler.ts');
const isController = (f: string) => f.endsWith('.controller.ts');

type Rule = (file: string, text: string) => string[];

function descendants(node: ts.Node): ts.Node[] {
  const found = [node];
  ts.forEachChild(node, (child) => void found.push(...descendants(child)));
  return found;
}

const trees = new Map<string, { tree: ts.SourceFile; nodes: ts.Node[] }>();
/** Every rule reads the same files: parse each text once. */
function parse(file: string, text: string): { tree: ts.SourceFile; nodes: ts.Node[] } {
  const key = `${file}\0${text}`;
  if (!trees.has(key)) {
    const tree = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    trees.set(key, { tree, nodes: descendants(tree) });
  }
  return trees.get(key)!;
}

const where = (tree: ts.SourceFile, node: ts.Node, what: string) => `${tree.fileName}:${tree.getLineAndCharacterOfPosition(node.getStart(tree)).line + 1} ${what}`;

/** The name an expression or type ends in: `store`, `this.store` and `port.EventStore` end in their last name. */
function nameOf(node: ts.Node): string {
  if (ts.isIdentifier(node) || ts.isPrivateIdentifier(node)) return node.text;
  if (ts.isPropertyAccessExpression(node)) return node.name.text;
  if (ts.isQualifiedName(node)) return node.right.text;
  return '';
}

/** Whether a name is, in this file, one of the symbols `matches` accepts: under its own name or the one it was imported as. */
function localNames(nodes: ts.Node[], matches: (name: string) => boolean): (name: string) => boolean {
  const aliases = new Set(nodes.filter(ts.isImportSpecifier).filter((s) => matches((s.propertyName ?? s.name).text)).map((s) => s.name.text));
  return (name) => matches(name) || aliases.has(name);
}

/** The names of parameters, properties and variables annotated with (or constructed as) one of the types. */
function holders(nodes: ts.Node[], isType: (name: string) => boolean): Set<string> {
  const names = new Set<string>();
  for (const node of nodes) {
    if (!(ts.isParameter(node) || ts.isPropertyDeclaration(node) || ts.isVariableDeclaration(node) || ts.isPropertySignature(node))) continue;
    const annotated = node.type && descendants(node.type).some((t) => ts.isTypeReferenceNode(t) && isType(nameOf(t.typeName)));
    const initializer = ts.isPropertySignature(node) ? undefined : node.initializer;
    const constructed = initializer && ts.isNewExpression(initializer) && isType(nameOf(initializer.expression));
    if ((annotated || constructed) && nameOf(node.name)) names.add(nameOf(node.name));
  }
  return names;
}

/** A relative import as the product file it names (`../tunnel` is src/tunnel/index.ts); a package as written. */
function resolve(file: string, specifier: string): string {
  if (!specifier.startsWith('.')) return specifier;
  const path = posix.join(posix.dirname(file), specifier);
  return [`${path}.ts`, `${path}/index.ts`].find((f) => PRODUCT_FILES.has(f)) ?? path;
}

function moduleOf(node: ts.Node): ts.StringLiteralLike | undefined {
  const literal = (n: ts.Node | undefined) => (n && ts.isStringLiteralLike(n) ? n : undefined);
  if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) return literal(node.moduleSpecifier);
  if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) return literal(node.moduleReference.expression);
  if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) return literal(node.argument.literal);
  const loads = (callee: ts.Expression) => callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require');
  return ts.isCallExpression(node) && loads(node.expression) ? literal(node.arguments[0]) : undefined;
}

/** Every module the file loads (import, export … from, import(), require(), import types), with where it does. */
function importsOf(file: string, text: string): { target: string; at: string }[] {
  const { tree, nodes } = parse(file, text);
  return nodes.flatMap((node) => {
    const specifier = moduleOf(node);
    return specifier ? [{ target: resolve(file, specifier.text), at: where(tree, specifier, '->') }] : [];
  });
}

function commandHandlers(file: string, text: string): number {
  const { nodes } = parse(file, text);
  const isCommandHandler = localNames(nodes, (name) => name === 'CommandHandler');
  return nodes.filter(ts.isDecorator).filter((d) => ts.isCallExpression(d.expression) && isCommandHandler(nameOf(d.expression.expression))).length;
}

/** Calls that append: `append` on whatever holds an event store (any `…EventStore`), `execute` on whatever holds the AggregateRepository. */
function appends(file: string, text: string): string[] {
  const { tree, nodes } = parse(file, text);
  const stores = holders(nodes, localNames(nodes, (name) => name.endsWith('EventStore')));
  const repositories = holders(nodes, localNames(nodes, (name) => name === 'AggregateRepository'));
  return nodes.filter(ts.isCallExpression).flatMap(({ expression: callee }) => {
    if (!ts.isPropertyAccessExpression(callee)) return [];
    const holder = nameOf(callee.expression);
    const appending = (callee.name.text === 'append' && stores.has(holder)) || (callee.name.text === 'execute' && repositories.has(holder));
    return appending ? [where(tree, callee, callee.getText(tree))] : [];
  });
}

const strayAppends: Rule = (file, text) => (isHandler(file) || file.startsWith('src/event-store/') || file === 'src/eventing/aggregate-repository.ts' ? [] : appends(file, text));

const controllerDataAccess: Rule = (file, text) => {
  if (!isController(file)) return [];
  const { tree, nodes } = parse(file, text);
  const names = nodes.filter(ts.isIdentifier).filter((i) => i.text === 'DataSource' || i.text === 'AggregateRepository');
  const calls = nodes.filter(ts.isCallExpression).filter((c) => ['query', 'getRepository'].includes(nameOf(c.expression)));
  return [
    ...[...names, ...calls].map((n) => where(tree, n, n.getText(tree))),
    ...importsOf(file, text).filter((i) => i.target === 'typeorm').map((i) => `${i.at} typeorm`),
  ];
};

const SPAWNING_MODULES = /^(node:)?child_process$|^execa$|^src\/process\//;
/** Features wrap spawning too (HelperChild.spawn, spawnQemuNbd); exec and fork are left out: they need child_process, and `exec` alone would catch RegExp.exec. */
const SPAWNING_CALLS = /^(spawn\w*|execa\w*|runProcess|streamProcess)$/;
const controllerProcesses: Rule = (file, text) => {
  if (!isController(file)) return [];
  const { tree, nodes } = parse(file, text);
  return [
    ...importsOf(file, text).filter((i) => SPAWNING_MODULES.test(i.target)).map((i) => `${i.at} ${i.target}`),
    ...nodes.filter(ts.isCallExpression).filter((c) => SPAWNING_CALLS.test(nameOf(c.expression))).map((c) => where(tree, c, nameOf(c.expression))),
  ];
};

const SQL = /\bselect\b[\s\S]*\bfrom\b|\binsert\s+into\b|\bupdate\b[\s\S]*\bset\b|\bdelete\s+from\b/i;
function literalText(node: ts.Node): string {
  if (ts.isStringLiteralLike(node)) return node.text;
  if (ts.isTemplateExpression(node)) return [node.head, ...node.templateSpans.map((s) => s.literal)].map((part) => part.text).join(' ');
  return '';
}
const misplacedSql: Rule = (file, text) => {
  if (file.startsWith('projections/') || isPlatform(file)) return [];
  const { tree, nodes } = parse(file, text);
  return nodes.filter((n) => SQL.test(literalText(n)) || (ts.isCallExpression(n) && nameOf(n.expression) === 'getRepository')).map((n) => where(tree, n, 'SQL'));
};

const importRule =
  (applies: (file: string) => boolean, forbidden: (target: string) => boolean): Rule =>
  (file, text) =>
    applies(file) ? importsOf(file, text).filter((i) => forbidden(i.target)).map((i) => `${i.at} ${i.target}`) : [];
const upward = (target: string) => target.startsWith('projections/') || target.startsWith('src/hub/');
const featureImports = importRule(isFeature, upward);
const platformImports = importRule(isPlatform, (target) => upward(target) || isFeature(target));
const agentImports = importRule((file) => !file.startsWith('src/agent/') && !file.startsWith('src/cli/'), (target) => target.startsWith('src/agent/'));

const violations = (rule: Rule) => PRODUCT.flatMap((file) => rule(file, code(file)));

describe('architecture', () => {
  const handlers = PRODUCT.filter(isHandler);

  it('has a command handler per state change, each one decorated and one command per file', () => {
    expect(handlers.length).toBeGreaterThanOrEqual(30);
    for (const file of handlers) expect({ file, handlers: commandHandlers(file, code(file)) }).toEqual({ file, handlers: 1 });
  });

  it('lets nothing but a command handler append to the event store', () => {
    expect(handlers.filter((file) => appends(file, code(file)).length === 0)).toEqual([]);
    expect(violations(strayAppends)).toEqual([]);
  });

  it('keeps SQL, repositories and aggregate state out of controllers', () => {
    expect(PRODUCT.filter(isController).length).toBeGreaterThan(5);
    expect(violations(controllerDataAccess)).toEqual([]);
  });

  it('keeps processes out of controllers: they ask a workflow or the buses', () => {
    expect(violations(controllerProcesses)).toEqual([]);
  });

  it('keeps SQL beside its read model', () => {
    expect(violations(misplacedSql)).toEqual([]);
  });

  it('points imports one way: features never import projections/ or src/hub', () => {
    expect(violations(featureImports)).toEqual([]);
  });

  it('keeps the platform free of features', () => {
    expect(violations(platformImports)).toEqual([]);
  });

  it('keeps the hub from importing the agent program: they share only the wire contract', () => {
    expect(violations(agentImports)).toEqual([]);
  });
});

describe('architecture rules', () => {
  const handler = `
    import { CommandHandler } from '@nestjs/cqrs';
    import { AggregateRepository } from '../../eventing/aggregate-repository';
    @CommandHandler(RenameCommand)
    export class RenameHandler {
      constructor(private readonly aggregates: AggregateRepository) {}
      execute(command: RenameCommand) { return this.aggregates.execute(stream(command.id), aggregate, command); }
    }`;

  const caught: [string, Rule, string, string][] = [
    ['an append through a parameter typed PostgresEventStore', strayAppends, 'src/backups/replay.ts', `
      import { PostgresEventStore } from '../event-store/postgres/postgres-event-store';
      export const replay = (store: PostgresEventStore) => store.append('s', [], 'no_stream');`],
    ['an append through a variable constructed as an event store', strayAppends, 'src/backups/replay.ts', `
      const store = new EventStoreDbEventStore(client);
      void store.append('s', [], 'no_stream');`],
    ['an execute on an aliased AggregateRepository', strayAppends, 'src/backups/renamer.ts', `
      import { AggregateRepository as Repo } from '../eventing/aggregate-repository';
      export class Renamer {
        constructor(private readonly repo: Repo) {}
        rename() { return this.repo.execute('s', aggregate, {}); }
      }`],
    ['lowercase SQL outside projections/', misplacedSql, 'src/policies/policy-lookup.ts', `
      export const lookup = (db: Db) => db.query('select id from rm_policies where name = $1', ['gold']);`],
    ['SQL in a template', misplacedSql, 'src/policies/policy-lookup.ts', 'export const purge = (table: string) => `delete from ${table}`;'],
    ["a platform file importing a feature's index.ts", platformImports, 'src/http/tunnel-status.ts', `import { TunnelServer } from '../tunnel';`],
    ['a controller importing node:child_process', controllerProcesses, 'src/backups/backups.controller.ts', `
      import { execFile } from 'node:child_process';
      export class BackupsController { list() { execFile('ls'); } }`],
    ['a controller spawning through a feature', controllerProcesses, 'src/restore/restore.controller.ts', `
      import { HelperChild } from './mounting/helper-processes';
      export class RestoreController { mount() { HelperChild.spawn('nbdfuse', [], 'log'); } }`],
    ['a controller running the process runner', controllerProcesses, 'src/backups/backups.controller.ts', `
      import { runProcess } from '../process';
      export class BackupsController { list() { return runProcess('qemu-img', ['info']); } }`],
    ['a require("…") with double quotes', featureImports, 'src/backups/backup.workflow.ts', `const { HubModule } = require("../hub/hub.module");`],
    ['a dynamic import() of projections/', featureImports, 'src/backups/backup.workflow.ts', `export const load = () => import("../../projections/read-model");`],
    ['an aliased AggregateRepository in a controller', controllerDataAccess, 'src/backups/backups.controller.ts', `
      import { AggregateRepository as Repo } from '../eventing/aggregate-repository';
      export class BackupsController { constructor(private readonly repo: Repo) {} }`],
  ];
  it.each(caught)('catch %s', (_, rule, file, text) => expect(rule(file, text)).not.toEqual([]));

  const clean: [string, Rule, string, string][] = [
    ['a command handler appending', strayAppends, 'src/backups/commands/rename.handler.ts', handler],
    ['execute and append on other types', strayAppends, 'src/backups/backups.service.ts', `
      export class BackupsService {
        constructor(private readonly commands: CommandBus) {}
        run(params: URLSearchParams) { params.append('a', 'b'); return this.commands.execute(new RenameCommand()); }
      }`],
    ['SQL in projections/', misplacedSql, 'projections/policies/policy-lookup.ts', `
      export const lookup = (db: Db) => db.query('select id from rm_policies where name = $1', ['gold']);`],
    ['SQL quoted in a comment', misplacedSql, 'src/policies/policy.dto.ts', `/** Read back by SELECT id FROM rm_policies in projections/. */ export class PolicyDto {}`],
    ['a platform file importing the platform', platformImports, 'src/http/health.ts', `import { runProcess } from '../process';`],
    ['a controller asking the buses', controllerProcesses, 'src/backups/backups.controller.ts', `
      import { QueryBus } from '@nestjs/cqrs';
      export class BackupsController { constructor(private readonly queries: QueryBus) {} list() { return this.queries.execute(new ListBackupJobsQuery()); } }`],
    ['a feature importing the platform', featureImports, 'src/backups/backup.workflow.ts', `const { runProcess } = require("../process");`],
  ];
  it.each(clean)('accept %s', (_, rule, file, text) => expect(rule(file, text)).toEqual([]));

  it('counts an aliased @CommandHandler', () => {
    expect(commandHandlers('src/x/rename.handler.ts', handler.replace(/CommandHandler/g, 'Handles').replace('{ Handles }', '{ CommandHandler as Handles }'))).toBe(1);
  });
});
