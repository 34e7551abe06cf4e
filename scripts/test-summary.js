#!/usr/bin/env node
// Prints the plain summary line "N passed, N failed" from vitest's JSON
// report. A test file that failed to load (no test ran in it) counts as one
// failure, so a broken import can never pass silently.
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? '.test-results/vitest.json';
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch {
  console.log('no test report was written');
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const passed = report.numPassedTests ?? 0;
let failed = report.numFailedTests ?? 0;
for (const suite of report.testResults ?? []) {
  if (suite.status === 'failed' && (suite.assertionResults ?? []).length === 0) failed++;
}
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
