/**
 * scripts/test-summary.js, the last line of CI: counts added up over several
 * vitest reports, a file that failed outside its tests and a missing report
 * counted as failures, and each failure named above the summary so the tail
 * of a CI log says what failed.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/children.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/test-summary.js', import.meta.url));

function summarize(reports: Record<string, unknown>): { lines: string[]; status: number | null; files: string[] } {
  const dir = tempDir('summary-');
  const files = Object.entries(reports).map(([name, report]) => {
    const file = join(dir, name);
    if (report !== undefined) writeFileSync(file, JSON.stringify(report));
    return file;
  });
  const run = spawnSync(process.execPath, [SCRIPT, ...files], { cwd: dir, encoding: 'utf8' });
  return { lines: run.stdout.trim().split('\n'), status: run.status, files };
}

describe('test summary', () => {
  it('adds passing reports up and exits 0', () => {
    const { lines, status } = summarize({
      'a.json': { numPassedTests: 3, numFailedTests: 0, testResults: [] },
      'b.json': { numPassedTests: 2, numFailedTests: 0, numPendingTests: 1, testResults: [] },
    });
    expect(lines.at(-1)).toBe('5 passed, 0 failed, 1 skipped');
    expect(lines.filter((l) => l.startsWith('FAILED'))).toEqual([]);
    expect(status).toBe(0);
  });

  it('names each failed test, a file that failed outside its tests and a missing report, and exits 1', () => {
    const { lines, status, files } = summarize({
      'a.json': {
        numPassedTests: 4,
        numFailedTests: 1,
        testResults: [
          {
            name: 'test/unit/x.test.ts',
            status: 'failed',
            assertionResults: [
              { status: 'passed', fullName: 'x works' },
              { status: 'failed', fullName: 'x > breaks', failureMessages: ['\u001b[31mAssertionError: expected 1 to be 2\u001b[39m\n    at y'] },
            ],
          },
          { name: 'test/unit/z.test.ts', status: 'failed', message: 'Cannot find module q', assertionResults: [] },
        ],
      },
      'missing.json': undefined,
    });
    expect(lines).toContain(`FAILED (${files[0]}) test/unit/x.test.ts > x > breaks: AssertionError: expected 1 to be 2`);
    expect(lines).toContain(`FAILED (${files[0]}) test/unit/z.test.ts (the file failed outside its tests): Cannot find module q`);
    expect(lines).toContain(`${files[1]}: no test report was written`);
    expect(lines.at(-1)).toBe('4 passed, 3 failed');
    expect(status).toBe(1);
  });

  it('fails a run in which no test passed', () => {
    const { lines, status } = summarize({ 'a.json': { numPassedTests: 0, numFailedTests: 0, testResults: [] } });
    expect(lines.at(-1)).toBe('0 passed, 0 failed');
    expect(status).toBe(1);
  });
});
