/**
 * Per-row work over a table with bounded concurrency: each row maps to a new row, or fails and
 * is reported (its error kept, the row left out), never failing the whole run.
 */
import pLimit from 'p-limit';
import type { DatasetRow } from './csv.js';
import { errorLine } from './errors.js';
import type { RowError } from './scenes.js';

export async function mapRowsReportingErrors(
  rows: readonly DatasetRow[],
  fn: (row: DatasetRow, index: number) => Promise<DatasetRow>,
  options: { concurrency: number; onProgress?: (done: number, total: number) => void },
): Promise<{ rows: DatasetRow[]; errors: RowError[] }> {
  const limit = pLimit(options.concurrency);
  const errors: RowError[] = [];
  let done = 0;
  const out = await Promise.all(
    rows.map((row, i) =>
      limit(async () => {
        try {
          return await fn(row, i);
        } catch (e) {
          errors.push({ row: i, path: row.path, error: errorLine(e) });
          return null;
        } finally {
          options.onProgress?.(++done, rows.length);
        }
      }),
    ),
  );
  errors.sort((a, b) => a.row - b.row);
  return { rows: out.filter((r): r is DatasetRow => r !== null), errors };
}
