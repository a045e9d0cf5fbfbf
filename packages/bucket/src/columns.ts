import { BucketError } from './errors.js';
import type { NumericColumn } from './kernel.js';

/** One dataset row as the reference's CSV has it (`numFrames` is accepted as an alias of `num_frames`). */
export interface BucketRow {
  num_frames?: number | string;
  numFrames?: number | string;
  height: number | string;
  width: number | string;
  [extra: string]: unknown;
}

/** Columnar dataset metadata: one entry per row. Typed arrays are used as they are (no copy). */
export interface BucketColumns {
  numFrames: ArrayLike<number>;
  height: ArrayLike<number>;
  width: ArrayLike<number>;
}

/** Columns as the kernel reads them. */
export interface NormalizedColumns {
  readonly length: number;
  readonly numFrames: NumericColumn;
  readonly height: NumericColumn;
  readonly width: NumericColumn;
}

function isNumericColumn(a: unknown): a is NumericColumn {
  return (
    a instanceof Int32Array || a instanceof Uint32Array || a instanceof Uint16Array || a instanceof Float64Array || a instanceof Float32Array
  );
}

function checkColumn(name: string, col: NumericColumn): void {
  for (let i = 0; i < col.length; i++) {
    const v = col[i]!;
    if (!(v >= 0) || v === Infinity) {
      throw new BucketError('E_BUCKET_DATA', `Row ${i}: ${name} is ${v}; every row needs a finite, non-negative ${name} (run the data tools' --info step or drop the row)`);
    }
  }
}

function toColumn(name: string, a: ArrayLike<number>): NumericColumn {
  if (isNumericColumn(a)) return a;
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = Number(a[i]);
  return out;
}

/**
 * Normalises rows (objects with num_frames, height, width) or columns into typed columns and validates
 * them (finite, non-negative). Typed-array columns are not copied.
 */
export function toColumns(data: readonly BucketRow[] | BucketColumns | NormalizedColumns): NormalizedColumns {
  let cols: NormalizedColumns;
  if (Array.isArray(data)) {
    const rows = data as readonly BucketRow[];
    const n = rows.length;
    const numFrames = new Float64Array(n);
    const height = new Float64Array(n);
    const width = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const r = rows[i];
      if (r === null || typeof r !== 'object') throw new BucketError('E_BUCKET_DATA', `Row ${i} is ${String(r)}; expected an object with num_frames, height and width`);
      const t = r.num_frames ?? r.numFrames;
      numFrames[i] = t === undefined || t === null || t === '' ? NaN : Number(t);
      height[i] = r.height === undefined || r.height === null || r.height === '' ? NaN : Number(r.height);
      width[i] = r.width === undefined || r.width === null || r.width === '' ? NaN : Number(r.width);
    }
    cols = { length: n, numFrames, height, width };
  } else {
    const c = data as BucketColumns;
    if (c === null || typeof c !== 'object' || !c.numFrames || !c.height || !c.width) {
      throw new BucketError('E_BUCKET_DATA', 'Expected an array of rows or columns { numFrames, height, width }');
    }
    const n = c.numFrames.length;
    if (c.height.length !== n || c.width.length !== n) {
      throw new BucketError('E_BUCKET_DATA', `Columns differ in length: numFrames ${n}, height ${c.height.length}, width ${c.width.length}`);
    }
    cols = { length: n, numFrames: toColumn('numFrames', c.numFrames), height: toColumn('height', c.height), width: toColumn('width', c.width) };
  }
  checkColumn('num_frames', cols.numFrames);
  checkColumn('height', cols.height);
  checkColumn('width', cols.width);
  return cols;
}
