// Adds up the vitest JSON reports that every package writes (see vitest.shared.ts)
// and prints one line per package plus the closing "N passed, N failed" line.
// Exits non-zero if any test failed, or if no package ran a single test.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const dirs = [];
for (const dir of readdirSync('packages')) dirs.push(join('packages', dir));
if (existsSync('examples')) dirs.push('examples');

let passed = 0;
let failed = 0;
let skipped = 0;
for (const dir of dirs.sort()) {
  const report = join(dir, '.test-results', 'vitest.json');
  if (!existsSync(report)) {
    console.log(`${dir}: no test report (no tests yet)`);
    continue;
  }
  const r = JSON.parse(readFileSync(report, 'utf8'));
  const p = r.numPassedTests ?? 0;
  const f = (r.numFailedTests ?? 0) + (r.numFailedTestSuites ?? 0);
  const s = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  passed += p;
  failed += f;
  skipped += s;
  const note = (r.numTotalTests ?? 0) === 0 ? ' (no test files yet)' : '';
  console.log(`${dir}: ${p} passed, ${f} failed, ${s} skipped${note}`);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
if (failed > 0 || passed === 0) process.exit(1);
