/**
 * The code typechecks under strict settings, and the protocol and client
 * compile with browser typings only (no Node types), so the browser build
 * pulls in nothing from Node.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function tsc(project: string): string {
  try {
    execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', project, '--noEmit'], { encoding: 'utf8' });
    return '';
  } catch (err) {
    return String((err as { stdout?: string }).stdout ?? err);
  }
}

describe('typecheck', () => {
  it('the whole project (strict, Node typings)', () => {
    expect(tsc('tsconfig.json')).toBe('');
  }, 120_000);

  it('protocol and client with browser typings only', () => {
    expect(tsc('tsconfig.browser.json')).toBe('');
  }, 120_000);
});
