/**
 * The reference pages against the code they describe: docs/protocol.md
 * names every error code, close code and limit; docs/api.md has a section
 * for every operation of the OpenAPI description. A code or endpoint added
 * without its documentation fails here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CloseCode, ErrorCode, httpStatusOf } from '../../src/protocol/index.js';
import { OPENAPI } from '../../src/server/http/openapi.js';
import { DEFAULT_LIMITS } from '../../src/server/options.js';

const read = (page: string): string => readFileSync(new URL(`../../docs/${page}`, import.meta.url), 'utf8');
const protocol = read('protocol.md');
const api = read('api.md');

/** The body of the section under `heading` (up to the next `## `). */
function section(page: string, heading: string): string {
  const start = page.indexOf(`\n## ${heading}\n`);
  expect(start, heading).toBeGreaterThanOrEqual(0);
  const end = page.indexOf('\n## ', start + 1);
  return page.slice(start, end < 0 ? undefined : end);
}

/** The first cell of each row of the tables in `text`. */
const firstCells = (text: string): string[] =>
  text
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| ---'))
    .map((l) => l.split('|')[1]?.trim() ?? '');

describe('docs/protocol.md', () => {
  it('lists every error code with its HTTP status', () => {
    const rows = section(protocol, 'Error codes').split('\n');
    for (const code of Object.values(ErrorCode)) {
      expect(rows.some((r) => r.startsWith(`| \`${code}\` | ${httpStatusOf[code]} |`)), code).toBe(true);
    }
  });

  it('lists every close code of the catalog', () => {
    const listed = firstCells(section(protocol, 'Close codes')).flatMap((c) => c.split(', '));
    const codes = Object.values(CloseCode).filter((c) => c !== CloseCode.Normal);
    for (const code of codes) expect(listed, String(code)).toContain(String(code));
  });

  it('names the flag of every connection and node limit; the API page names the body limit', () => {
    const limits = section(protocol, 'Limits');
    const flag = (name: string) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    for (const name of Object.keys(DEFAULT_LIMITS)) {
      expect(name === 'maxBodyBytes' ? api : limits, name).toContain(`\`${flag(name)}\``);
    }
  });

  it('links the API page', () => {
    expect(protocol).toContain('](api.md)');
  });
});

describe('docs/api.md', () => {
  it('has a section for every operation of the OpenAPI description, and each in the endpoint table', () => {
    const table = section(api, 'Endpoints');
    for (const [path, item] of Object.entries(OPENAPI.paths)) {
      const spelled = path.replace(/\{([^}]+)\}/g, ':$1');
      for (const method of Object.keys(item)) {
        const name = `${method.toUpperCase()} ${spelled}`;
        expect(api, name).toMatch(new RegExp(`\\n## .*${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
        expect(table, name).toContain(`\`${name}`);
      }
    }
  });
});
