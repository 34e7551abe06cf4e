/**
 * The docs stay inside the repository and true to its folders: every
 * relative link of every doc resolves to a file of the repository (and to a
 * heading, when it names one), no doc points at the old outside spec, and
 * the README's Layout names exactly the folders that exist, and
 * docs/cluster.md shows the upstream block `switchboard cluster` prints.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nginxUpstream } from '../../src/server/cluster-command.js';
import { anchors, codeBlocks, docFiles, links, readDoc, ROOT, section } from '../helpers/markdown.js';

/** Top-level names .gitignore leaves out of a clone (`dist/`, `node_modules/`, …). */
const IGNORED = new Set(
  readFileSync(join(ROOT, '.gitignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim().replace(/^\//, '').replace(/\/$/, ''))
    .filter((l) => l && !l.startsWith('#') && !l.includes('*') && !l.includes('/')),
);

function isDir(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}

/** Why `target`, linked from `file`, does not resolve inside the repository; undefined when it does. */
function brokenLink(file: string, target: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return undefined; // https:, mailto:, …
  const [rawPath = '', anchor] = target.split('#', 2);
  const path = decodeURIComponent(rawPath);
  const abs = path === '' ? join(ROOT, file) : path.startsWith('/') ? join(ROOT, path) : resolve(ROOT, dirname(file), path);
  const rel = relative(ROOT, abs);
  if (rel.startsWith('..') || resolve(ROOT, rel) !== abs) return 'points outside the repository';
  if (IGNORED.has(rel.split('/')[0] ?? '')) return `points into ${rel.split('/')[0]}/, which a clone does not have`;
  if (!existsSync(abs)) return 'no such file';
  if (anchor && abs.endsWith('.md') && !anchors(readFileSync(abs, 'utf8')).has(anchor)) return `no heading #${anchor} there`;
  return undefined;
}

describe('links in the docs', () => {
  const files = docFiles();

  it('finds the docs', () => {
    expect(files).toContain('README.md');
    expect(files).toContain('docs/cluster.md');
    expect(files.some((f) => f.startsWith('examples/'))).toBe(true);
  });

  it('resolve inside the repository, to files that exist and headings that exist', () => {
    const broken: string[] = [];
    for (const file of files) {
      for (const { target, line } of links(readDoc(file))) {
        const why = brokenLink(file, target);
        if (why) broken.push(`${file}:${line} ${target}: ${why}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('never name SPEC.md or ../shared: the repository carries its own reference', () => {
    const found: string[] = [];
    for (const file of files) {
      readDoc(file)
        .split('\n')
        .forEach((text, i) => {
          if (/SPEC\.md|\.\.\/shared\b/.test(text)) found.push(`${file}:${i + 1}: ${text.trim()}`);
        });
    }
    expect(found).toEqual([]);
  });

  it('the checker itself refuses what it should', () => {
    expect(brokenLink('README.md', '../shared/SPEC.md')).toBe('points outside the repository');
    expect(brokenLink('docs/client.md', '../../shared/SPEC.md')).toBe('points outside the repository');
    expect(brokenLink('README.md', 'docs/nothing.md')).toBe('no such file');
    expect(brokenLink('README.md', 'docs/cluster.md#no-such-heading')).toBe('no heading #no-such-heading there');
    expect(brokenLink('README.md', 'dist/web/switchboard.js')).toBe('points into dist/, which a clone does not have');
    expect(brokenLink('README.md', 'docs/cluster.md#quick-start')).toBeUndefined();
    expect(brokenLink('docs/cluster.md', '#quick-start')).toBeUndefined();
    expect(brokenLink('README.md', 'https://example.com/x')).toBeUndefined();
  });
});

interface LayoutEntry {
  /** The path the entry starts with: `src/server/`, `Dockerfile`. */
  path: string;
  /** The rest of its line and its continuation lines. */
  text: string;
}

/** The entries of the README's Layout block: a path at the start of a line, its description after it and on indented lines below. */
function layoutEntries(): LayoutEntry[] {
  const block = codeBlocks(section(readDoc('README.md'), 'Layout'))[0];
  if (!block) throw new Error('README.md: no code block under "## Layout"');
  const entries: LayoutEntry[] = [];
  for (const line of block.text.split('\n')) {
    const head = /^(\S+)\s*(.*)$/.exec(line);
    if (head) entries.push({ path: head[1] ?? '', text: head[2] ?? '' });
    else if (line.trim() && entries.length > 0) (entries[entries.length - 1] as LayoutEntry).text += ` ${line.trim()}`;
  }
  return entries;
}

/** Folder names (`core/`, `k8s/`) an entry's description lists: each is a folder inside the entry's path. */
function folderNames(text: string): string[] {
  return [...text.matchAll(/(?<![\w./<>-])([\w.-]+(?:\/[\w.-]+)*\/)(?![\w/])/g)].map((m) => m[1] ?? '');
}

/** File names (`gateway.ts`, `nginx.conf`) an entry's description lists: each is somewhere inside the entry's path. */
function fileNames(text: string): string[] {
  return [...text.matchAll(/(?<![\w./<>-])([\w-]+(?:\.[\w-]+)*\.(?:ts|js|md|json|ya?ml|conf|cfg|html|css|sh|png|svg))(?![\w/])/g)].map((m) => m[1] ?? '');
}

function existsUnder(dir: string, name: string): boolean {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === name) return true;
    if (entry.isDirectory() && existsUnder(join(dir, entry.name), name)) return true;
  }
  return false;
}

/** What a clone holds directly in `dir` (relative to the root): folders as `name/`, files as `name`. */
function children(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true })
    .filter((e) => !(dir === '' && (e.name === '.git' || IGNORED.has(e.name))))
    .map((e) => (e.isDirectory() ? `${e.name}/` : e.name))
    .sort();
}

/** Whether the Layout names `path` (`src/brokers/nats/`, `docs/cluster.md`): as an entry, inside an entry's path, or listed by its parent's entry. */
function named(entries: LayoutEntry[], path: string): boolean {
  if (entries.some((e) => e.path === path || (path.endsWith('/') && e.path.startsWith(path)))) return true;
  const parent = path.replace(/[^/]+\/?$/, '');
  const name = path.slice(parent.length);
  const owner = entries.find((e) => e.path === parent);
  if (!owner) return false;
  return name.endsWith('/') ? folderNames(owner.text).includes(name) : fileNames(owner.text).includes(name);
}

describe("the README's Layout", () => {
  const entries = layoutEntries();

  it('names only paths that exist: each entry, the folders it lists inside it, the files it mentions', () => {
    const missing: string[] = [];
    for (const { path, text } of entries) {
      const abs = join(ROOT, path);
      if (path.endsWith('/') ? !isDir(abs) : !existsSync(abs)) {
        missing.push(path);
        continue;
      }
      if (!path.endsWith('/')) continue;
      for (const folder of folderNames(text)) if (!isDir(join(abs, folder))) missing.push(`${path}${folder}`);
      for (const file of fileNames(text)) if (!existsUnder(abs, file)) missing.push(`${path}…/${file}`);
    }
    expect(missing).toEqual([]);
  });

  it('names every folder of the repository, of src/ two levels deep, of test/, bench/ and examples/, and every page and folder of docs/ and entry of deploy/', () => {
    const required = [
      ...children('').filter((c) => c.endsWith('/')),
      ...children('src')
        .filter((c) => c.endsWith('/'))
        .flatMap((c) => [`src/${c}`, ...children(`src/${c}`).filter((d) => d.endsWith('/')).map((d) => `src/${c}${d}`)]),
      ...['test', 'bench', 'examples'].flatMap((dir) => children(dir).filter((c) => c.endsWith('/')).map((c) => `${dir}/${c}`)),
      ...children('docs')
        .filter((c) => c.endsWith('/') || c.endsWith('.md'))
        .map((c) => `docs/${c}`),
      ...children('deploy').map((c) => `deploy/${c}`),
    ];
    expect(required).toContain('src/brokers/redis/');
    expect(required).toContain('docs/cluster.md');
    expect(required.filter((path) => !named(entries, path))).toEqual([]);
  });

  it('the parser reads entries, their folders and their files', () => {
    expect(folderNames('the node: core/ (in gateway.ts), routing/, k8s/ (Deployment) /readyz')).toEqual(['core/', 'routing/', 'k8s/']);
    expect(fileNames('nginx.conf, docker-compose.yml (with nginx.compose.conf), e.g. bench/<file>.ts')).toEqual([
      'nginx.conf',
      'docker-compose.yml',
      'nginx.compose.conf',
    ]);
    const fake: LayoutEntry[] = [
      { path: 'src/brokers/', text: 'one folder per broker: memory/, redis/' },
      { path: 'docs/', text: 'cluster.md' },
    ];
    expect(named(fake, 'src/brokers/redis/')).toBe(true);
    expect(named(fake, 'src/brokers/nats/')).toBe(false);
    expect(named(fake, 'src/')).toBe(true);
    expect(named(fake, 'docs/cluster.md')).toBe(true);
    expect(named(fake, 'docs/protocol.md')).toBe(false);
  });
});

describe('docs/cluster.md', () => {
  it('shows the upstream block exactly as `switchboard cluster --nodes 3 --port 8080` prints it', () => {
    const shown = codeBlocks(readDoc('docs/cluster.md')).filter((b) => b.text.startsWith('upstream switchboard {'));
    expect(shown.map((b) => b.text)).toEqual([nginxUpstream({ nodes: 3, startArgs: [], basePort: 8080, host: '0.0.0.0', idPrefix: 'node' })]);
  });
});
