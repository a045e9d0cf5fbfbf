/**
 * Dataset CSV conventions (spec 6.2): one row per clip or image with `path` and optional
 * `text, num_frames, height, width, aspect_ratio, fps, resolution` plus score columns
 * `aes, flow, ocr, match, cmotion`. Relative paths resolve against the CSV's folder.
 * Reading streams through csv-parse and checks the schema, naming file, row and column of a bad
 * value; writing goes through csv-stringify and is atomic.
 */
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import { stringify } from 'csv-stringify';
import { atomicWriteFile } from '@opensora/core';
import { DataError } from './errors.js';
import { isUrl } from './media.js';

export type CellValue = string | number | undefined;

export interface DatasetRow {
  path: string;
  text?: string;
  num_frames?: number;
  height?: number;
  width?: number;
  aspect_ratio?: number;
  fps?: number;
  resolution?: number;
  text_len?: number;
  aes?: number;
  flow?: number;
  ocr?: number;
  match?: number;
  cmotion?: string;
  timestamp?: string;
  [column: string]: CellValue;
}

export type ColumnType = 'string' | 'int' | 'float';

/** Types of the columns the reference defines; other columns are inferred (numeric or string). */
export const COLUMN_TYPES: Readonly<Record<string, ColumnType>> = {
  path: 'string',
  text: 'string',
  num_frames: 'int',
  height: 'int',
  width: 'int',
  aspect_ratio: 'float',
  fps: 'float',
  resolution: 'int',
  text_len: 'int',
  aes: 'float',
  flow: 'float',
  ocr: 'float',
  match: 'float',
  cmotion: 'string',
  timestamp: 'string',
  id: 'int',
};

/** The columns training needs (`VariableVideoTextDataset`). */
export const TRAIN_REQUIRED_COLUMNS = ['path', 'text', 'num_frames', 'height', 'width'] as const;
/** `--train-column` keeps exactly these. */
export const TRAIN_COLUMNS = ['path', 'text', 'num_frames', 'fps', 'height', 'width', 'aspect_ratio', 'resolution', 'text_len'] as const;
/** Canonical order used when writing new columns. */
export const CANONICAL_COLUMNS = ['path', 'text', 'num_frames', 'height', 'width', 'aspect_ratio', 'fps', 'resolution', 'text_len', 'aes', 'flow', 'ocr', 'match', 'cmotion', 'timestamp'] as const;

export interface ReadCsvOptions {
  /** Require a non-empty `path` in every row (default true). */
  requirePath?: boolean;
  /** Columns that must be present in the header (e.g. `TRAIN_REQUIRED_COLUMNS`). */
  requiredColumns?: readonly string[];
  /** Extra column types beyond `COLUMN_TYPES`. */
  types?: Record<string, ColumnType>;
  /** Stop listing schema errors after this many (default 20). */
  maxErrors?: number;
}

const MISSING = new Set(['', 'nan', 'NaN', 'NAN', 'None', 'null', 'NULL', '<NA>']);
const NUMBER_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|Infinity)$/;

function toNumber(s: string): number {
  if (/^[+-]?inf/i.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  return Number(s);
}

interface SchemaIssue {
  row: number;
  line: number;
  column: string;
  value: string;
  expected: string;
}

function coerceRecords(file: string, header: string[], records: Array<{ rec: Record<string, string>; line: number }>, options: ReadCsvOptions): DatasetRow[] {
  const types: Record<string, ColumnType> = { ...COLUMN_TYPES, ...(options.types ?? {}) };
  const issues: SchemaIssue[] = [];
  const max = options.maxErrors ?? 20;
  const requirePath = options.requirePath ?? true;
  for (const c of options.requiredColumns ?? []) {
    if (!header.includes(c)) {
      throw new DataError(`${file}: missing required column '${c}' (header: ${header.join(', ')})`, {
        hint: c === 'path' ? 'the first line must be a header with a path column' : `run the step that adds '${c}' (e.g. datautil --info for num_frames/height/width)`,
        details: { file, column: c },
      });
    }
  }
  if (requirePath && !header.includes('path')) {
    throw new DataError(`${file}: missing required column 'path' (header: ${header.join(', ')})`, { details: { file, column: 'path' } });
  }
  // Columns without a declared type: numeric when every non-missing value is numeric.
  const inferred: Record<string, ColumnType> = {};
  for (const c of header) {
    if (types[c]) continue;
    let numeric = true;
    let any = false;
    for (const { rec } of records) {
      const v = rec[c] ?? '';
      if (MISSING.has(v.trim())) continue;
      any = true;
      if (!NUMBER_RE.test(v.trim())) {
        numeric = false;
        break;
      }
    }
    inferred[c] = numeric && any ? 'float' : 'string';
  }
  const rows: DatasetRow[] = [];
  records.forEach(({ rec, line }, i) => {
    const row: Record<string, CellValue> = {};
    for (const c of header) {
      const raw = rec[c] ?? '';
      const t = types[c] ?? inferred[c]!;
      if (t === 'string') {
        row[c] = c === 'text' || c === 'path' ? raw : MISSING.has(raw.trim()) ? undefined : raw;
        continue;
      }
      const v = raw.trim();
      if (MISSING.has(v)) {
        row[c] = undefined;
        continue;
      }
      const x = NUMBER_RE.test(v) ? toNumber(v) : NaN;
      const ok = t === 'int' ? Number.isInteger(x) && x >= 0 : !Number.isNaN(x);
      if (!ok) {
        if (issues.length < max) issues.push({ row: i + 1, line, column: c, value: raw, expected: t === 'int' ? 'a non-negative integer' : 'a number' });
        row[c] = undefined;
      } else row[c] = x;
    }
    if (requirePath && !(typeof row.path === 'string' && row.path.trim() !== '')) {
      if (issues.length < max) issues.push({ row: i + 1, line, column: 'path', value: String(row.path ?? ''), expected: 'a non-empty path' });
    }
    rows.push(row as DatasetRow);
  });
  if (issues.length) {
    const list = issues.map((s) => `row ${s.row} (line ${s.line}), column '${s.column}': '${s.value}' is not ${s.expected}`);
    throw new DataError(`${file}: ${issues.length >= max ? `${max}+` : issues.length} bad value(s): ${list.join('; ')}`, {
      hint: 'fix or drop those rows; numeric columns take plain numbers, empty means missing',
      details: { file, issues },
    });
  }
  return rows;
}

/** Reads a dataset CSV (streaming parse), checks the schema and returns typed rows. */
export async function readDatasetCsv(file: string, options: ReadCsvOptions = {}): Promise<DatasetRow[]> {
  let header: string[] = [];
  const records: Array<{ rec: Record<string, string>; line: number }> = [];
  if (!existsSync(file)) throw new DataError(`${file}: CSV file not found`, { details: { file } });
  const input = createReadStream(file);
  const parser = input.pipe(
    parse({
      bom: true,
      columns: (h: string[]) => {
        header = h.map((x) => x.trim());
        return header;
      },
      skip_empty_lines: true,
      info: true,
      relax_quotes: false,
    }),
  );
  input.on('error', (e) => parser.destroy(e));
  try {
    for await (const item of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
      records.push({ rec: item.record, line: item.info.lines });
    }
  } catch (e) {
    const err = e as { code?: string; message?: string; lines?: number };
    if (err.code === 'ENOENT') throw new DataError(`${file}: CSV file not found`, { details: { file }, cause: e });
    throw new DataError(`${file}: malformed CSV${err.lines ? ` near line ${err.lines}` : ''}: ${err.message ?? String(e)}`, { details: { file }, cause: e });
  }
  return coerceRecords(file, header, records, options);
}

/** Synchronous twin of `readDatasetCsv` (for constructors that take a CSV path). */
export function readDatasetCsvSync(file: string, options: ReadCsvOptions = {}): DatasetRow[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new DataError(`${file}: CSV file not found or unreadable`, { details: { file }, cause: e });
  }
  let header: string[] = [];
  let items: Array<{ record: Record<string, string>; info: { lines: number } }>;
  try {
    items = parseSync(text, {
      bom: true,
      columns: (h: string[]) => {
        header = h.map((x) => x.trim());
        return header;
      },
      skip_empty_lines: true,
      info: true,
    }) as unknown as Array<{ record: Record<string, string>; info: { lines: number } }>;
  } catch (e) {
    const err = e as { message?: string; lines?: number };
    throw new DataError(`${file}: malformed CSV${err.lines ? ` near line ${err.lines}` : ''}: ${err.message ?? String(e)}`, { details: { file }, cause: e });
  }
  return coerceRecords(
    file,
    header,
    items.map((it) => ({ rec: it.record, line: it.info.lines })),
    options,
  );
}

/** Union of the rows' columns in first-seen order (like pandas concat). */
export function columnsOf(rows: readonly DatasetRow[], preferred: readonly string[] = []): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const c of preferred) {
    if (!seen.has(c) && rows.some((r) => c in r)) {
      seen.add(c);
      out.push(c);
    }
  }
  for (const r of rows) {
    for (const k of Object.keys(r)) {
      if (!seen.has(k)) {
        seen.add(k);
        out.push(k);
      }
    }
  }
  return out;
}

function formatCell(v: CellValue): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return '';
    if (v === Infinity) return 'inf';
    if (v === -Infinity) return '-inf';
    return String(v);
  }
  return v;
}

export interface WriteCsvOptions {
  /** Column order; default: the rows' columns in first-seen order. */
  columns?: readonly string[];
}

/** Serialises rows to CSV text (csv-stringify). */
export function stringifyDatasetCsv(rows: readonly DatasetRow[], options: WriteCsvOptions = {}): Promise<string> {
  const columns = options.columns ? [...options.columns] : columnsOf(rows);
  return new Promise((resolve, reject) => {
    const chunks: string[] = [];
    const s = stringify({ header: true, columns, quoted_match: /^\s|\s$/ });
    s.on('data', (c: Buffer | string) => chunks.push(c.toString()));
    s.on('error', reject);
    s.on('end', () => resolve(chunks.join('')));
    for (const r of rows) s.write(columns.map((c) => formatCell(r[c])));
    s.end();
  });
}

/** Writes rows to `file` atomically (temp file + rename). Returns the path. */
export async function writeDatasetCsv(file: string, rows: readonly DatasetRow[], options: WriteCsvOptions = {}): Promise<string> {
  if (!file.toLowerCase().endsWith('.csv')) {
    throw new DataError(`${file}: only CSV output is supported`, { hint: 'use a .csv file name (parquet is not supported by this port)' });
  }
  const text = await stringifyDatasetCsv(rows, options);
  await atomicWriteFile(file, text);
  return file;
}

/** Resolves a row path against the CSV's folder (URLs and absolute paths pass through). */
export function resolveRowPath(p: string, root: string): string {
  if (isUrl(p) || path.isAbsolute(p)) return p;
  return path.resolve(root, p);
}

/** Rewrites relative paths so that they stay valid when the table moves from `fromRoot` to `toRoot`. */
export function rebaseRows(rows: readonly DatasetRow[], fromRoot: string, toRoot: string): DatasetRow[] {
  const a = path.resolve(fromRoot);
  const b = path.resolve(toRoot);
  if (a === b) return rows.slice();
  return rows.map((r) => {
    if (typeof r.path !== 'string' || isUrl(r.path) || path.isAbsolute(r.path)) return r;
    return { ...r, path: path.relative(b, path.resolve(a, r.path)) };
  });
}
