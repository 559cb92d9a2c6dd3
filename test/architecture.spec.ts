import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, sep } from 'node:path';
import * as ts from 'typescript';

/**
 * The shape every feature has, checked on the source itself: one write path (only command
 * handlers append), one read path (controllers ask the QueryBus; SQL lives beside its read
 * model) and one import direction (entry points → projections → features → platform, and the
 * folder graph has no cycle). Each rule reads a file's syntax tree and takes (file, text), so the
 * planted violations in test/fixtures/architecture/ go through the same code as the real tree.
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
const PRODUCT = [...sources('src'), ...sources('projections')];
const PRODUCT_FILES = new Set(PRODUCT);
/** Shared by the hub and the agent: the wire contract and the adapters of the tools and protocols both run. */
const AGENT_PLATFORM = ['src/wire/', 'src/qemu/', 'src/process/', 'src/config/', 'src/nbd-protocol/', 'src/data-mover/', 'src/tunnel/'];
const PLATFORM = [
  'src/event-store/',
  'src/eventing/',
  'src/projection-runner/',
  'src/database/',
  'src/http/',
  'src/operations/',
  ...AGENT_PLATFORM,
];
/** Entry points compose like the hub does: the CLI starts the hub or the agent and is the client of the hub's API. */
const ENTRY_POINTS = ['src/hub/', 'src/cli/'];
/** The agent program: it runs on the hypervisor host and shares with the hub only AGENT_PLATFORM. */
const AGENT = 'src/agent/';
const isPlatform = (f: string) => PLATFORM.some((p) => f.startsWith(p));
const isEntryPoint = (f: string) => ENTRY_POINTS.some((p) => f.startsWith(p));
/** Everything under src/ that is neither an entry point, the agent program nor the platform. */
const isFeature = (f: string) => f.startsWith('src/') && !isEntryPoint(f) && !f.startsWith(AGENT) && !isPlatform(f);
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

/** `require(…)` and `import(…)`: the calls that load a module at run time. */
const isLoad = (node: ts.Node): node is ts.CallExpression =>
  ts.isCallExpression(node) && (node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === 'require'));

function moduleOf(node: ts.Node): ts.StringLiteralLike | undefined {
  const literal = (n: ts.Node | undefined) => (n && ts.isStringLiteralLike(n) ? n : undefined);
  if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) return literal(node.moduleSpecifier);
  if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) return literal(node.moduleReference.expression);
  if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) return literal(node.argument.literal);
  return isLoad(node) ? literal(node.arguments[0]) : undefined;
}

/** Every module the file loads (import, export … from, import(), require(), import types), with where it does. */
function importsOf(file: string, text: string): { target: string; at: string }[] {
  const { tree, nodes } = parse(file, text);
  return nodes.flatMap((node) => {
    const specifier = moduleOf(node);
    return specifier ? [{ target: resolve(file, specifier.text), at: where(tree, specifier, '->') }] : [];
  });
}

function commandHandlers(file: string, text: string): ts.Decorator[] {
  const { nodes } = parse(file, text);
  const isCommandHandler = localNames(nodes, (name) => name === 'CommandHandler');
  return nodes.filter(ts.isDecorator).filter((d) => ts.isCallExpression(d.expression) && isCommandHandler(nameOf(d.expression.expression)));
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

/** One state change, one file: a `.handler.ts` holds exactly one @CommandHandler and appends; no other file holds one. */
const handlerShape: Rule = (file, text) => {
  const { tree } = parse(file, text);
  const decorators = commandHandlers(file, text);
  if (!isHandler(file)) return decorators.map((d) => where(tree, d, '@CommandHandler outside a .handler.ts'));
  const problems = decorators.length === 1 ? [] : [`${file} holds ${decorators.length} @CommandHandler`];
  return appends(file, text).length ? problems : [...problems, `${file} never appends`];
};

const strayAppends: Rule = (file, text) => (isHandler(file) || file.startsWith('src/event-store/') || file === 'src/eventing/aggregate-repository.ts' ? [] : appends(file, text));

/** A database driver or ORM: whoever imports one talks to the database, whether or not this file calls .query yet. */
const DATABASE_MODULES = /^(pg|pg-.+|typeorm|@nestjs\/typeorm|postgres|knex)$|^src\/database\/data-source\.ts$/;
const DATA_ACCESS_NAMES = new Set(['DataSource', 'EntityManager', 'QueryRunner', 'AggregateRepository']);
const DATA_ACCESS_CALLS = new Set(['query', 'getRepository', 'createQueryBuilder', 'transaction']);
const controllerDataAccess: Rule = (file, text) => {
  if (!isController(file)) return [];
  const { tree, nodes } = parse(file, text);
  const names = nodes.filter(ts.isIdentifier).filter((i) => DATA_ACCESS_NAMES.has(i.text));
  const calls = nodes.filter(ts.isCallExpression).filter((c) => DATA_ACCESS_CALLS.has(nameOf(c.expression)));
  return [
    ...[...names, ...calls].map((n) => where(tree, n, n.getText(tree))),
    ...importsOf(file, text).filter((i) => DATABASE_MODULES.test(i.target)).map((i) => `${i.at} ${i.target}`),
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

/** A module named at run time cannot be checked by any rule here (nor bundled, nor found by a reader): every load names its module. */
const dynamicLoads: Rule = (file, text) => {
  const { tree, nodes } = parse(file, text);
  return nodes.filter(isLoad).filter((call) => !(call.arguments[0] && ts.isStringLiteralLike(call.arguments[0]))).map((call) => where(tree, call, `${call.getText(tree)}: not a literal`));
};

const importRule =
  (applies: (file: string) => boolean, forbidden: (target: string) => boolean): Rule =>
  (file, text) =>
    applies(file) ? importsOf(file, text).filter((i) => forbidden(i.target)).map((i) => `${i.at} ${i.target}`) : [];
const isEntryOrAgent = (target: string) => isEntryPoint(target) || target.startsWith(AGENT);
const featureImports = importRule(isFeature, (target) => target.startsWith('projections/') || isEntryPoint(target));
const projectionImports = importRule((file) => file.startsWith('projections/'), isEntryOrAgent);
const platformImports = importRule(isPlatform, (target) => target.startsWith('projections/') || isEntryOrAgent(target) || isFeature(target));
/** The hub's code never imports the agent program; only the CLI starts it. */
const hubImportsAgent = importRule((file) => !file.startsWith(AGENT) && !file.startsWith('src/cli/'), (target) => target.startsWith(AGENT));
/** What runs in the agent (its own folder and AGENT_PLATFORM) imports only the agent's own code, AGENT_PLATFORM and packages. */
const agentImports = importRule(
  (file) => file.startsWith(AGENT) || AGENT_PLATFORM.some((p) => file.startsWith(p)),
  (target) => /^(src|projections|bench|test|migrations)\//.test(target) && !target.startsWith(AGENT) && !AGENT_PLATFORM.some((p) => target.startsWith(p)),
);
/** Product code imports product code and packages: benches and tests sit on top of it. */
const outsideImports = importRule(() => true, (target) => /^(bench|test)\//.test(target));

/** The folder a file belongs to in the folder graph: `src/<folder>`, or `projections` as a whole. */
const folderOf = (file: string) => (file.startsWith('projections/') ? 'projections' : file.startsWith('src/') ? file.split('/').slice(0, 2).join('/') : undefined);

/** The real tree's folder graph: for each arrow between two folders, the files that draw it. */
const FOLDER_GRAPH = (() => {
  const arrows = new Map<string, Map<string, Set<string>>>();
  for (const file of PRODUCT)
    for (const { target } of importsOf(file, code(file))) {
      const [from, to] = [folderOf(file)!, folderOf(target)];
      if (!to || to === from) continue;
      if (!arrows.has(from)) arrows.set(from, new Map());
      if (!arrows.get(from)!.has(to)) arrows.get(from)!.set(to, new Set());
      arrows.get(from)!.get(to)!.add(file);
    }
  return arrows;
})();

/** Whether `to` reaches `from` over arrows drawn by files other than `file` (whose own arrows are the ones asked about). */
function reaches(start: string, goal: string, file: string): boolean {
  const seen = new Set<string>();
  const next = [start];
  while (next.length) {
    const folder = next.pop()!;
    if (folder === goal) return true;
    if (seen.has(folder)) continue;
    seen.add(folder);
    for (const [to, files] of FOLDER_GRAPH.get(folder) ?? []) if ([...files].some((f) => f !== file)) next.push(to);
  }
  return false;
}

/** An import whose folder leads back to the importer's folder runs up the folder graph: the folders would form a cycle. */
const upwardImports: Rule = (file, text) => {
  const from = folderOf(file);
  if (!from) return [];
  return importsOf(file, text).flatMap(({ target, at }) => {
    const to = folderOf(target);
    return to && to !== from && reaches(to, from, file) ? [`${at} ${target}: ${to} already leads back to ${from}`] : [];
  });
};

const RULES: Record<string, Rule> = {
  handlerShape,
  strayAppends,
  controllerDataAccess,
  controllerProcesses,
  misplacedSql,
  dynamicLoads,
  featureImports,
  projectionImports,
  platformImports,
  hubImportsAgent,
  agentImports,
  outsideImports,
  upwardImports,
};

const violations = (rule: Rule) => PRODUCT.flatMap((file) => rule(file, code(file)));

describe('architecture', () => {
  it('has a command handler per state change, each one decorated, appending, and one command per file', () => {
    expect(PRODUCT.filter(isHandler).length).toBeGreaterThanOrEqual(30);
    expect(violations(handlerShape)).toEqual([]);
  });

  it('lets nothing but a command handler append to the event store', () => {
    expect(violations(strayAppends)).toEqual([]);
  });

  it('keeps SQL, database drivers, repositories and aggregate state out of controllers', () => {
    expect(PRODUCT.filter(isController).length).toBeGreaterThan(5);
    expect(violations(controllerDataAccess)).toEqual([]);
  });

  it('keeps processes out of controllers: they ask a workflow or the buses', () => {
    expect(violations(controllerProcesses)).toEqual([]);
  });

  it('keeps SQL beside its read model', () => {
    expect(violations(misplacedSql)).toEqual([]);
  });

  it('loads every module by a literal name', () => {
    expect(violations(dynamicLoads)).toEqual([]);
  });

  it('points imports one way: features never import projections/, src/hub or src/cli', () => {
    expect(violations(featureImports)).toEqual([]);
  });

  it('keeps projections/ below the entry points and away from the agent', () => {
    expect(violations(projectionImports)).toEqual([]);
  });

  it('keeps the platform free of features, projections and entry points', () => {
    expect(violations(platformImports)).toEqual([]);
  });

  it('keeps the hub from importing the agent program', () => {
    expect(violations(hubImportsAgent)).toEqual([]);
  });

  it('lets the agent import only its own code and the platform folders it shares with the hub', () => {
    expect(PRODUCT.filter((f) => f.startsWith(AGENT)).length).toBeGreaterThan(10);
    expect(violations(agentImports)).toEqual([]);
  });

  it('keeps benches and tests out of the product', () => {
    expect(violations(outsideImports)).toEqual([]);
  });

  it('draws a folder graph without cycles: every import runs down', () => {
    expect(FOLDER_GRAPH.size).toBeGreaterThan(20);
    expect(violations(upwardImports)).toEqual([]);
  });
});

/**
 * test/fixtures/architecture/: one planted violation per file, its first lines naming the file it
 * pretends to be and the rules it breaks; clean/ holds files no rule may report. Every plant goes
 * through every rule, so a rule that stops catching its plant, or starts catching another's, fails here.
 */
const FIXTURES = join(ROOT, 'test/fixtures/architecture');
function fixtures(dir: string): [string, string, string[], string][] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.ts.txt'))
    .sort()
    .map((name) => {
      const text = readFileSync(join(dir, name), 'utf8');
      const file = /^\/\/ file: (\S+)$/m.exec(text)?.[1];
      const breaks = /^\/\/ breaks: (.+)$/m.exec(text)?.[1].split(',').map((r) => r.trim()) ?? [];
      if (!file) throw new Error(`${name} names no file`);
      return [name, file, breaks, text];
    });
}
const PLANTS = fixtures(FIXTURES);
const CLEAN = fixtures(join(FIXTURES, 'clean'));
const reportedBy = (file: string, text: string) => Object.keys(RULES).filter((name) => RULES[name](file, text).length > 0);

describe('architecture rules', () => {
  it('are tested by at least 20 planted violations, which between them break every rule', () => {
    expect(PLANTS.length).toBeGreaterThanOrEqual(20);
    expect(Object.keys(RULES).filter((rule) => !PLANTS.some(([, , breaks]) => breaks.includes(rule)))).toEqual([]);
    expect(PLANTS.flatMap(([name, , breaks]) => breaks.filter((rule) => !RULES[rule]).map((rule) => `${name}: ${rule}`))).toEqual([]);
  });

  it.each(PLANTS)('catch %s (as %s) by exactly %j', (_, file, breaks, text) => {
    expect(breaks.length).toBeGreaterThan(0);
    expect(reportedBy(file, text)).toEqual(Object.keys(RULES).filter((rule) => breaks.includes(rule)));
  });

  it.each(CLEAN)('accept %s (as %s)', (_, file, breaks, text) => {
    expect(breaks).toEqual([]);
    expect(reportedBy(file, text)).toEqual([]);
  });
});
