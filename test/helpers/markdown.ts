/**
 * The repository's Markdown as the doc tests read it: which files are docs,
 * their fenced code blocks (with the `<!-- test: name -->` marker that may
 * precede one), their links, and the body of a section. Plain line scanning:
 * the docs use nothing fancier than fences, headings and inline links.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (absolute, ends without a slash). */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');

export interface CodeBlock {
  /** The fence's info string (`bash`, `ts`, or '' for none). */
  lang: string;
  /** The lines between the fences, joined with '\n'. */
  text: string;
  /** The name of a `<!-- test: name -->` comment on the line before the fence, if any. */
  marker: string | undefined;
  /** 1-based line of the opening fence. */
  line: number;
}

export interface Link {
  target: string;
  line: number;
}

/** Paths (relative to the root) of every doc: README.md, docs/*.md, and any README.md or .md under examples/ and deploy/. */
export function docFiles(): string[] {
  const files = ['README.md'];
  for (const dir of ['docs', 'examples', 'deploy']) files.push(...markdownUnder(dir));
  return files.filter((f) => existsSync(join(ROOT, f)));
}

function markdownUnder(dir: string): string[] {
  const abs = join(ROOT, dir);
  if (!existsSync(abs)) return [];
  const out: string[] = [];
  for (const name of readdirSync(abs).sort()) {
    const path = join(abs, name);
    if (statSync(path).isDirectory()) out.push(...markdownUnder(join(dir, name)));
    else if (name.endsWith('.md')) out.push(relative(ROOT, path));
  }
  return out;
}

export function readDoc(file: string): string {
  return readFileSync(join(ROOT, file), 'utf8');
}

/** Every fenced code block of `markdown`, in order. */
export function codeBlocks(markdown: string): CodeBlock[] {
  const lines = markdown.split('\n');
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(```+)\s*([\w-]*)/.exec(lines[i] ?? '');
    if (!open) continue;
    const fence = open[1] ?? '```';
    const marker = /^<!--\s*test:\s*([\w-]+)\s*-->\s*$/.exec(lines[i - 1] ?? '')?.[1];
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !(lines[j] ?? '').startsWith(fence); j++) body.push(lines[j] ?? '');
    blocks.push({ lang: open[2] ?? '', text: body.join('\n'), marker, line: i + 1 });
    i = j;
  }
  return blocks;
}

/** The block preceded by `<!-- test: name -->` in `file`; throws when there is none or more than one. */
export function markedBlock(file: string, name: string): CodeBlock {
  const found = codeBlocks(readDoc(file)).filter((b) => b.marker === name);
  if (found.length !== 1) throw new Error(`${file} has ${found.length} blocks marked <!-- test: ${name} -->, not one`);
  return found[0] as CodeBlock;
}

/** `markdown`'s lines with those of fenced code blocks (fences included) blanked, so line numbers stay. */
function outsideFences(markdown: string): string[] {
  let fence: string | undefined;
  return markdown.split('\n').map((line) => {
    const f = /^(```+)/.exec(line)?.[1];
    if (fence) {
      if (f && line.startsWith(fence)) fence = undefined;
      return '';
    }
    if (f) fence = f;
    return f ? '' : line;
  });
}

/** `markdown` outside code: fenced blocks blanked (line count kept) and inline code removed. */
export function prose(markdown: string): string {
  return outsideFences(markdown)
    .map((line) => line.replace(/`[^`]*`/g, ''))
    .join('\n');
}

/** Inline links and images (`[text](target)`, `<img src="target">`) outside code, with their lines. */
export function links(markdown: string): Link[] {
  const out: Link[] = [];
  prose(markdown)
    .split('\n')
    .forEach((line, i) => {
      for (const m of line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ target: m[1] ?? '', line: i + 1 });
      for (const m of line.matchAll(/<(?:img|a)\s[^>]*(?:src|href)="([^"]+)"/g)) out.push({ target: m[1] ?? '', line: i + 1 });
      for (const m of line.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/g)) out.push({ target: m[1] ?? '', line: i + 1 });
    });
  return out;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, '')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of `markdown`'s headings (repeats get -1, -2, … as on GitHub) and of its explicit `id`/`name` anchors. */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of outsideFences(markdown)) {
    for (const m of line.matchAll(/<a\s[^>]*(?:id|name)="([^"]+)"/g)) out.add(m[1] ?? '');
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const base = slug(h[1] ?? '');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** The text under the heading `title` (any level) up to the next heading of the same or a higher level. */
export function section(markdown: string, title: string): string {
  const lines = markdown.split('\n');
  const plain = outsideFences(markdown);
  const start = plain.findIndex((l) => new RegExp(`^(#{1,6})\\s+${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`).test(l));
  if (start < 0) throw new Error(`no heading "${title}"`);
  const level = (/^#+/.exec(lines[start] ?? '')?.[0] ?? '#').length;
  let end = start + 1;
  for (; end < lines.length; end++) {
    const h = /^(#{1,6})\s/.exec(plain[end] ?? '');
    if (h && (h[1] ?? '').length <= level) break;
  }
  return lines.slice(start + 1, end).join('\n');
}
