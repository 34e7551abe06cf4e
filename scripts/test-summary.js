#!/usr/bin/env node
// Prints the plain summary line "N passed, N failed" over one or more vitest
// JSON reports (one per run: the machine's Node, then other Node versions),
// added up. A test file that failed with no failed test in it (an import
// that broke, a beforeAll hook that threw and skipped its tests) counts as
// one failure, so it can never pass silently; so does a report that is
// missing or unreadable, so a run that never started cannot pass either.
// Each failure is named (file, test, first line of its message) above the
// summary, so the tail of a CI log says what failed.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const files = process.argv.length > 2 ? process.argv.slice(2) : ['.test-results/vitest.json'];

/** The first line of a failure message, without colour codes, cut short. */
function firstLine(message) {
  // eslint-disable-next-line no-control-regex
  const line = String(message ?? '').replace(/\u001b\[[0-9;]*m/g, '').split('\n').find((l) => l.trim() !== '') ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** Counts of one report: passed, failed (load failures included), skipped, and what failed. */
function count(file) {
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return { passed: 0, failed: 1, skipped: 0, missing: true, failures: [] };
  }
  const passed = report.numPassedTests ?? 0;
  let failed = report.numFailedTests ?? 0;
  const failures = [];
  for (const suite of report.testResults ?? []) {
    const where = relative(process.cwd(), suite.name ?? '');
    const failedTests = (suite.assertionResults ?? []).filter((a) => a.status === 'failed');
    for (const test of failedTests) failures.push(`${where} > ${test.fullName ?? test.title}: ${firstLine(test.failureMessages?.[0])}`);
    if (suite.status === 'failed' && failedTests.length === 0) {
      failed++;
      failures.push(`${where} (the file failed outside its tests): ${firstLine(suite.message)}`);
    }
  }
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  return { passed, failed, skipped, missing: false, failures };
}

const total = { passed: 0, failed: 0, skipped: 0 };
for (const file of files) {
  const run = count(file);
  // One line per run when there are several, worded so that only the last
  // line reads "N passed, N failed".
  for (const failure of run.failures) console.log(`FAILED (${file}) ${failure}`);
  if (run.missing) console.log(`${file}: no test report was written`);
  else if (files.length > 1) console.log(`${file}: passed ${run.passed}, failed ${run.failed}, skipped ${run.skipped}`);
  total.passed += run.passed;
  total.failed += run.failed;
  total.skipped += run.skipped;
}
const { passed, failed, skipped } = total;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
