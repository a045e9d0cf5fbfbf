/**
 * tools/datasets/datautil.py as a library: every operation of spec 6.3 as a function on rows, plus
 * `runDatautil`, which applies them in the reference's fixed order and names the output file with
 * the reference's suffixes. Additions (not in the reference at v1.1.0, asked for by this project):
 * `hwmin`, `ocrmax`, `shuffle` with a seed, `head`; their suffixes follow the reference's.
 * Fixes: `--info` never crashes on an unreadable file (the row is reported and left out),
 * stems keep dotted names (only the .csv extension is removed), `--load-caption txt` works,
 * and relative paths stay valid when the output goes to another folder.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { glob } from 'tinyglobby';
import { Rng } from '@opensora/core';
import { columnsOf, readDatasetCsv, rebaseRows, resolveRowPath, writeDatasetCsv, TRAIN_COLUMNS, type DatasetRow } from './csv.js';
import { DataError } from './errors.js';
import { isUrl, probeMedia, type ProbeOptions } from './media.js';
import type { RowError } from './scenes.js';
import { mapRowsReportingErrors } from './rows.js';
import { CMOTION_SENTENCES, approxTokenCount, cleanCaption, hasUrl, isEnglish, refineLlmCaption } from './text.js';

export interface InfoOptions extends ProbeOptions {
  root?: string;
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * `--info`: probes every row and sets num_frames, height, width, aspect_ratio, fps, resolution.
 * A row whose file cannot be read is reported with its error and left out of `rows`.
 */
export async function probeRows(rows: readonly DatasetRow[], options: InfoOptions = {}): Promise<{ rows: DatasetRow[]; errors: RowError[] }> {
  const root = options.root ?? process.cwd();
  return mapRowsReportingErrors(
    rows,
    async (row) => {
      const info = await probeMedia(resolveRowPath(row.path, root), options);
      return {
        ...row,
        num_frames: info.numFrames,
        height: info.height,
        width: info.width,
        aspect_ratio: info.aspectRatio,
        fps: info.kind === 'video' ? info.fps : undefined,
        resolution: info.resolution,
      } as DatasetRow;
    },
    { concurrency: options.concurrency ?? 8, onProgress: options.onProgress },
  );
}

/** `--difference`: drop rows whose path is in `other`. */
export function differenceRows(rows: readonly DatasetRow[], other: readonly DatasetRow[]): DatasetRow[] {
  const drop = new Set(other.map((r) => r.path));
  return rows.filter((r) => !drop.has(r.path));
}

/** `--intersection`: inner join on path, adding only the other table's columns this one lacks. */
export function intersectRows(rows: readonly DatasetRow[], other: readonly DatasetRow[]): DatasetRow[] {
  const have = new Set(columnsOf(rows));
  const extra = columnsOf(other).filter((c) => !have.has(c));
  const byPath = new Map<string, DatasetRow[]>();
  for (const o of other) {
    const list = byPath.get(o.path) ?? [];
    list.push(o);
    byPath.set(o.path, list);
  }
  const out: DatasetRow[] = [];
  for (const r of rows) {
    for (const o of byPath.get(r.path) ?? []) {
      const m: DatasetRow = { ...r };
      for (const c of extra) m[c] = o[c];
      out.push(m);
    }
  }
  return out;
}

/** Merges tables on `path` (outer join); later tables fill columns earlier ones lack or left empty. */
export function mergeRows(tables: ReadonlyArray<readonly DatasetRow[]>): DatasetRow[] {
  const order: string[] = [];
  const byPath = new Map<string, DatasetRow>();
  for (const t of tables) {
    for (const r of t) {
      const cur = byPath.get(r.path);
      if (!cur) {
        byPath.set(r.path, { ...r });
        order.push(r.path);
        continue;
      }
      for (const [k, v] of Object.entries(r)) if (cur[k] === undefined && v !== undefined) cur[k] = v;
    }
  }
  return order.map((p) => byPath.get(p)!);
}

/** `--train-column`. */
export function keepTrainColumns(rows: readonly DatasetRow[]): DatasetRow[] {
  return rows.map((r) => {
    const o: DatasetRow = { path: r.path };
    for (const c of TRAIN_COLUMNS) if (c in r) (o as Record<string, unknown>)[c] = r[c];
    return o;
  });
}

/** `--load-caption json|txt`: text from `{path without extension}.json` (key `caption`) or `.txt`; '' when absent. */
export function loadCaptions(rows: readonly DatasetRow[], kind: 'json' | 'txt', root = process.cwd()): DatasetRow[] {
  return rows.map((r) => {
    const file = resolveRowPath(r.path, root);
    const side = file.slice(0, file.length - path.extname(file).length) + '.' + kind;
    let text = '';
    try {
      const raw = readFileSync(side, 'utf8');
      if (kind === 'txt') text = raw.trim();
      else {
        const j = JSON.parse(raw) as { caption?: unknown };
        text = typeof j.caption === 'string' ? j.caption : '';
      }
    } catch {
      text = '';
    }
    return { ...r, text };
  });
}

/** `--ext`: keep rows whose file exists (URLs are kept). */
export function filterExisting(rows: readonly DatasetRow[], root = process.cwd()): DatasetRow[] {
  return rows.filter((r) => isUrl(r.path) || existsSync(resolveRowPath(r.path, root)));
}

export function removeUrlRows(rows: readonly DatasetRow[]): DatasetRow[] {
  return rows.filter((r) => !(typeof r.text === 'string' && hasUrl(r.text)));
}

export function filterLanguage(rows: readonly DatasetRow[], lang: string): DatasetRow[] {
  if (lang !== 'en') throw new DataError(`--lang ${lang}: only 'en' is supported (as in the reference)`);
  return rows.filter((r) => typeof r.text === 'string' && isEnglish(r.text));
}

/** `--remove-empty-caption`. */
export function removeEmptyCaptions(rows: readonly DatasetRow[]): DatasetRow[] {
  return rows.filter((r) => typeof r.text === 'string' && r.text.length > 0);
}

/** Deduplicate on a column, keeping the first. */
export function dedupRows(rows: readonly DatasetRow[], column: 'path' | 'text' | string): DatasetRow[] {
  const seen = new Set<string>();
  return rows.filter((r) => {
    const k = String(r[column] ?? '\u0000missing');
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export function relpathRows(rows: readonly DatasetRow[], root: string, base = process.cwd()): DatasetRow[] {
  return rows.map((r) => (isUrl(r.path) ? r : { ...r, path: path.relative(root, resolveRowPath(r.path, base)) }));
}

export function abspathRows(rows: readonly DatasetRow[], root: string): DatasetRow[] {
  return rows.map((r) => (isUrl(r.path) || path.isAbsolute(r.path) ? r : { ...r, path: path.join(root, r.path) }));
}

/** `--merge-cmotion`: append the camera-motion sentence (probability 1, as the reference). */
export function mergeCmotion(rows: readonly DatasetRow[]): DatasetRow[] {
  return rows.map((r) => {
    const s = typeof r.cmotion === 'string' ? (CMOTION_SENTENCES[r.cmotion] ?? '') : '';
    return s ? { ...r, text: `${r.text ?? ''} ${s}` } : r;
  });
}

export function mapText(rows: readonly DatasetRow[], fn: (t: string) => string): DatasetRow[] {
  return rows.map((r) => (typeof r.text === 'string' ? { ...r, text: fn(r.text) } : r));
}

/** `--count-num-token`: sets `text_len` with `count` (default: `approxTokenCount`). */
export function countTokens(rows: readonly DatasetRow[], count: (text: string) => number = approxTokenCount): DatasetRow[] {
  return rows.map((r) => ({ ...r, text_len: typeof r.text === 'string' ? count(r.text) : undefined }));
}

/** Stable sort on a column; missing values last (pandas' na_position='last'). */
export function sortRows(rows: readonly DatasetRow[], column: string, ascending: boolean): DatasetRow[] {
  const idx = rows.map((r, i) => i);
  const val = (r: DatasetRow) => r[column];
  idx.sort((a, b) => {
    const x = val(rows[a]!);
    const y = val(rows[b]!);
    const mx = x === undefined || (typeof x === 'number' && Number.isNaN(x));
    const my = y === undefined || (typeof y === 'number' && Number.isNaN(y));
    if (mx || my) return mx === my ? a - b : mx ? 1 : -1;
    const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
    return (ascending ? c : -c) || a - b;
  });
  return idx.map((i) => rows[i]!);
}

/** Keeps rows with `min <= column <= max` (bounds optional; missing values fail any bound). */
export function filterRange(rows: readonly DatasetRow[], column: string, min?: number, max?: number): DatasetRow[] {
  return rows.filter((r) => {
    let v = r[column];
    if (column === 'resolution' && v === undefined && typeof r.height === 'number' && typeof r.width === 'number') v = r.height * r.width;
    if (typeof v !== 'number' || Number.isNaN(v)) return false;
    return (min === undefined || v >= min) && (max === undefined || v <= max);
  });
}

/** Seeded shuffle (Fisher-Yates with @opensora/random). */
export function shuffleRows(rows: readonly DatasetRow[], seed: number): DatasetRow[] {
  const out = rows.slice();
  new Rng(seed).shuffle(out);
  return out;
}

export function headRows(rows: readonly DatasetRow[], n: number): DatasetRow[] {
  return rows.slice(0, Math.max(0, n));
}

/** np.array_split: N near-equal contiguous parts, the first `len % n` one longer. */
export function shardRows<T>(rows: readonly T[], n: number): T[][] {
  if (!(Number.isInteger(n) && n >= 1)) throw new DataError(`shard count must be a positive integer, got ${n}`);
  const base = Math.floor(rows.length / n);
  const extra = rows.length % n;
  const out: T[][] = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    const len = base + (i < extra ? 1 : 0);
    out.push(rows.slice(at, at + len));
    at += len;
  }
  return out;
}

export interface DatautilOptions extends ProbeOptions {
  /** Output file (default: beside the first input, named from the inputs and the suffixes). */
  output?: string;
  format?: 'csv';
  difference?: string;
  intersection?: string;
  trainColumn?: boolean;
  loadCaption?: 'json' | 'txt';
  info?: boolean;
  videoInfo?: boolean;
  ext?: boolean;
  removeUrl?: boolean;
  lang?: string;
  removeEmptyCaption?: boolean;
  removePathDuplication?: boolean;
  relpath?: string;
  abspath?: string;
  mergeCmotion?: boolean;
  refineLlmCaption?: boolean;
  cleanCaption?: boolean;
  /** true: approximate count; a function: an exact tokenizer's count. */
  countNumToken?: boolean | ((text: string) => number);
  sort?: string;
  sortAscending?: string;
  fmin?: number;
  fmax?: number;
  hwmin?: number;
  hwmax?: number;
  aesmin?: number;
  matchmin?: number;
  flowmin?: number;
  ocrmax?: number;
  removeTextDuplication?: boolean;
  shuffle?: boolean;
  seed?: number;
  head?: number;
  shard?: number;
  /** Probe concurrency for info (default 8). */
  concurrency?: number;
  /** Do not write files, only return the rows. */
  dryRun?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface DatautilStep {
  step: string;
  before: number;
  after: number;
}

export interface DatautilResult {
  rows: DatasetRow[];
  /** Files written (one per shard). */
  outputs: string[];
  /** Rows that `info` could not read. */
  errors: RowError[];
  steps: DatautilStep[];
  /** Folder that relative paths of `rows` resolve against. */
  root: string;
}

/** Python's str(float): 5 -> '5.0', 0.5 -> '0.5'. */
export function pyFloat(x: number): string {
  return Number.isInteger(x) ? `${x}.0` : String(x);
}

/** Stem of an input (pattern): basename without the .csv extension, glob characters removed. */
export function inputStem(p: string): string {
  let b = path.basename(p);
  b = b.replace(/\.(csv|parquet)$/i, '');
  return b.replace(/[*?[\]{}]/g, '') || 'data';
}

/** The reference's output suffixes, in its fixed order (plus this port's additions at the end). */
export function datautilSuffix(o: DatautilOptions): string {
  let s = '';
  if (o.sort !== undefined || o.sortAscending !== undefined) s += '_sort';
  if (o.info) s += '_info';
  if (o.videoInfo) s += '_vinfo';
  if (o.ext) s += '_ext';
  if (o.loadCaption) s += `_load${o.loadCaption}`;
  if (o.relpath !== undefined) s += '_relpath';
  if (o.abspath !== undefined) s += '_abspath';
  if (o.removeEmptyCaption) s += '_noempty';
  if (o.removeUrl) s += '_nourl';
  if (o.lang) s += `_${o.lang}`;
  if (o.removePathDuplication) s += '_noduppath';
  if (o.removeTextDuplication) s += '_noduptext';
  if (o.refineLlmCaption) s += '_llm';
  if (o.cleanCaption) s += '_clean';
  if (o.mergeCmotion) s += '_cmcaption';
  if (o.countNumToken) s += '_ntoken';
  if (o.fmin !== undefined) s += `_fmin${Math.trunc(o.fmin)}`;
  if (o.fmax !== undefined) s += `_fmax${Math.trunc(o.fmax)}`;
  if (o.hwmax !== undefined) s += `_hwmax${Math.trunc(o.hwmax)}`;
  if (o.aesmin !== undefined) s += `_aesmin${pyFloat(o.aesmin)}`;
  if (o.matchmin !== undefined) s += `_matchmin${pyFloat(o.matchmin)}`;
  if (o.flowmin !== undefined) s += `_flowmin${pyFloat(o.flowmin)}`;
  if (o.hwmin !== undefined) s += `_hwmin${Math.trunc(o.hwmin)}`;
  if (o.ocrmax !== undefined) s += `_ocrmax${pyFloat(o.ocrmax)}`;
  if (o.shuffle) s += `_shuffle${o.seed ?? 0}`;
  if (o.head !== undefined) s += `_head${o.head}`;
  return s;
}

/** The file `runDatautil` writes for these inputs and options (before shard numbering). */
export function datautilOutputPath(inputs: readonly string[], o: DatautilOptions): string {
  if (o.output) return o.output;
  if (!inputs.length) throw new DataError('no input given and no output path');
  let base = inputs.map(inputStem).join('+');
  if (o.difference) base += `-${inputStem(o.difference)}`;
  return path.join(path.dirname(inputs[0]!), `${base}${datautilSuffix(o)}.csv`);
}

/** Expands glob patterns (tinyglobby) and reads every match; paths are rebased onto `root`. */
export async function loadTables(patterns: readonly string[], root: string): Promise<DatasetRow[]> {
  const out: DatasetRow[] = [];
  for (const p of patterns) {
    const files = /[*?[\]{}]/.test(p) ? (await glob(p, { absolute: true, onlyFiles: true })).sort() : [path.resolve(p)];
    if (files.length === 0) throw new DataError(`no file matches '${p}'`);
    for (const f of files) out.push(...rebaseRows(await readDatasetCsv(f), path.dirname(f), root));
  }
  return out;
}

/** Runs datautil: loads the inputs (glob patterns, or rows with `root`), applies the operations in the reference's order, writes the output. */
export async function runDatautil(inputs: readonly string[] | { rows: readonly DatasetRow[]; root?: string }, o: DatautilOptions = {}): Promise<DatautilResult> {
  if (o.format && o.format !== 'csv') throw new DataError(`format '${o.format}' is not supported`, { hint: 'use csv (parquet is not supported by this port)' });
  if (o.sort !== undefined && o.sortAscending !== undefined) throw new DataError('--sort and --sort-ascending are mutually exclusive');
  const patterns = Array.isArray(inputs) ? (inputs as string[]) : [];
  const root = Array.isArray(inputs) ? path.resolve(path.dirname(patterns[0] ?? '.')) : path.resolve((inputs as { root?: string }).root ?? process.cwd());
  let rows: DatasetRow[] = Array.isArray(inputs) ? await loadTables(patterns, root) : [...(inputs as { rows: readonly DatasetRow[] }).rows];
  const steps: DatautilStep[] = [];
  const errors: RowError[] = [];
  const step = async (name: string, fn: (r: DatasetRow[]) => DatasetRow[] | Promise<DatasetRow[]>) => {
    const before = rows.length;
    rows = await fn(rows);
    steps.push({ step: name, before, after: rows.length });
  };
  if (o.difference) {
    const other = await loadTables([o.difference], root);
    await step('difference', (r) => differenceRows(r, other));
  }
  if (o.intersection) {
    const other = await loadTables([o.intersection], root);
    await step('intersection', (r) => intersectRows(r, other));
  }
  if (o.trainColumn) await step('train-column', keepTrainColumns);
  if (o.loadCaption) await step(`load-caption ${o.loadCaption}`, (r) => loadCaptions(r, o.loadCaption!, root));
  if (o.info || o.videoInfo) {
    await step(o.videoInfo ? 'video-info' : 'info', async (r) => {
      const res = await probeRows(r, { ...o, root, frameCount: o.videoInfo ? 'decode' : o.frameCount, onProgress: o.onProgress });
      errors.push(...res.errors);
      return res.rows;
    });
  }
  if (o.ext) await step('ext', (r) => filterExisting(r, root));
  if (o.removeUrl) await step('remove-url', removeUrlRows);
  if (o.lang) await step(`lang ${o.lang}`, (r) => filterLanguage(r, o.lang!));
  if (o.removeEmptyCaption) await step('remove-empty-caption', removeEmptyCaptions);
  if (o.removePathDuplication) await step('remove-path-duplication', (r) => dedupRows(r, 'path'));
  if (o.relpath !== undefined) await step('relpath', (r) => relpathRows(r, path.resolve(o.relpath!), root));
  if (o.abspath !== undefined) await step('abspath', (r) => abspathRows(r, path.resolve(o.abspath!)));
  if (o.mergeCmotion) await step('merge-cmotion', mergeCmotion);
  if (o.refineLlmCaption) await step('refine-llm-caption', (r) => mapText(r, refineLlmCaption));
  if (o.cleanCaption) await step('clean-caption', (r) => mapText(r, cleanCaption));
  if (o.countNumToken) await step('count-num-token', (r) => countTokens(r, typeof o.countNumToken === 'function' ? o.countNumToken : undefined));
  if (o.sort !== undefined) await step(`sort ${o.sort}`, (r) => sortRows(r, o.sort!, false));
  if (o.sortAscending !== undefined) await step(`sort-ascending ${o.sortAscending}`, (r) => sortRows(r, o.sortAscending!, true));
  if (o.removeEmptyCaption) await step('remove-empty-caption (2nd pass)', removeEmptyCaptions);
  if (o.fmin !== undefined || o.fmax !== undefined) await step('fmin/fmax', (r) => filterRange(r, 'num_frames', o.fmin, o.fmax));
  if (o.hwmin !== undefined || o.hwmax !== undefined) await step('hwmin/hwmax', (r) => filterRange(r, 'resolution', o.hwmin, o.hwmax));
  if (o.aesmin !== undefined) await step('aesmin', (r) => filterRange(r, 'aes', o.aesmin));
  if (o.matchmin !== undefined) await step('matchmin', (r) => filterRange(r, 'match', o.matchmin));
  if (o.flowmin !== undefined) await step('flowmin', (r) => filterRange(r, 'flow', o.flowmin));
  if (o.ocrmax !== undefined) await step('ocrmax', (r) => filterRange(r, 'ocr', undefined, o.ocrmax));
  if (o.removeTextDuplication) await step('remove-text-duplication', (r) => dedupRows(r, 'text'));
  if (o.shuffle) await step(`shuffle seed=${o.seed ?? 0}`, (r) => shuffleRows(r, o.seed ?? 0));
  if (o.head !== undefined) await step(`head ${o.head}`, (r) => headRows(r, o.head!));

  const outputs: string[] = [];
  if (!o.dryRun) {
    const out = path.resolve(datautilOutputPath(patterns.length ? patterns : [path.join(root, 'data.csv')], o));
    const outRoot = path.dirname(out);
    const columns = columnsOf(rows);
    const rebased = o.abspath !== undefined ? rows : rebaseRows(rows, root, outRoot);
    if (o.shard && o.shard > 1) {
      const parts = shardRows(rebased, o.shard);
      for (let i = 0; i < parts.length; i++) {
        const f = out.replace(/\.csv$/i, `_${i}.csv`);
        await writeDatasetCsv(f, parts[i]!, { columns });
        outputs.push(f);
      }
    } else {
      await writeDatasetCsv(out, rebased, { columns });
      outputs.push(out);
    }
  }
  return { rows, outputs, errors, steps, root };
}
