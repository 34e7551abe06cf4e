#!/usr/bin/env node
// Prints the plain summary line "N passed, N failed" over one or more vitest
// JSON reports (one per run: the machine's Node, then other Node versions),
// added up. A test file that failed with no failed test in it (an import
// that broke, a beforeAll hook that threw and skipped its tests) counts as
// one failure, so it can never pass silently; so does a report that is
// missing or unreadable, so a run that never started cannot pass either.
import { readFileSync } from 'node:fs';

const files = process.argv.length > 2 ? process.argv.slice(2) : ['.test-results/vitest.json'];

/** Counts of one report: passed, failed (load failures included), skipped. */
function count(file) {
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return { passed: 0, failed: 1, skipped: 0, missing: true };
  }
  const passed = report.numPassedTests ?? 0;
  let failed = report.numFailedTests ?? 0;
  for (const suite of report.testResults ?? []) {
    if (suite.status === 'failed' && !(suite.assertionResults ?? []).some((a) => a.status === 'failed')) failed++;
  }
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  return { passed, failed, skipped, missing: false };
}

const total = { passed: 0, failed: 0, skipped: 0 };
for (const file of files) {
  const run = count(file);
  // One line per run when there are several, worded so that only the last
  // line reads "N passed, N failed".
  if (run.missing) console.log(`${file}: no test report was written`);
  else if (files.length > 1) console.log(`${file}: passed ${run.passed}, failed ${run.failed}, skipped ${run.skipped}`);
  total.passed += run.passed;
  total.failed += run.failed;
  total.skipped += run.skipped;
}
const { passed, failed, skipped } = total;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
