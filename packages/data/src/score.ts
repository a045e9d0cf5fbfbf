/**
 * Scoring: a scorer reads some frames of a row and returns a number for one column. `runScorer`
 * runs a scorer over a table with bounded concurrency, checkpoints the output CSV atomically as it
 * goes, and resumes: on a re-run, rows that already hold a finite value in the column are skipped.
 * A row that fails is reported and keeps an empty value (so a later run retries it).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { createProgress } from '@opensora/core';
import { readDatasetCsv, rebaseRows, resolveRowPath, writeDatasetCsv, type DatasetRow } from './csv.js';
import { resizeRgb } from './imageops.js';
import { readImage, readVideoFrames, type Frame } from './decode.js';
import { errorLine, MediaError } from './errors.js';
import { mediaKind, probeMedia, type MediaKind } from './media.js';
import type { RowError } from './scenes.js';

export type FrameSelection = { points: readonly number[] } | { indices: readonly number[] };

export interface ScoreInput {
  frames: Frame[];
  /** Source frame indices of `frames` ([0] for images). */
  indices: number[];
  row: DatasetRow;
  path: string;
  kind: MediaKind;
  /** Source size and frame count. */
  width: number;
  height: number;
  numFrames: number;
}

export interface Scorer {
  /** Short name (logs, progress). */
  readonly name: string;
  /** Output column. */
  readonly column: string;
  /** Frames to read from videos (images give their single frame). */
  readonly frames: FrameSelection;
  /** Decode size from the source size (default: native). */
  decodeSize?(width: number, height: number): { width: number; height: number } | undefined;
  score(input: ScoreInput): number | Promise<number>;
  dispose?(): void | Promise<void>;
}

/** Frame indices of a selection for a clip of `total` frames; out-of-range indices clamp to the last frame. */
export function selectFrameIndices(sel: FrameSelection, total: number): number[] {
  const last = Math.max(0, total - 1);
  const raw = 'points' in sel ? sel.points.map((p) => Math.trunc(p * total)) : [...sel.indices];
  return raw.map((i) => Math.min(Math.max(0, i), last));
}

/** Reads the frames a scorer wants from one file. */
export async function readScorerInput(file: string, row: DatasetRow, scorer: Pick<Scorer, 'frames' | 'decodeSize'>): Promise<ScoreInput> {
  const kind = mediaKind(file);
  if (kind === 'image') {
    let frame = await readImage(file);
    const size = scorer.decodeSize?.(frame.width, frame.height);
    if (size && (size.width !== frame.width || size.height !== frame.height)) {
      frame = await resizeRgb(frame, size.width, size.height);
    }
    return { frames: [frame], indices: [0], row, path: file, kind, width: frame.width, height: frame.height, numFrames: 1 };
  }
  let { num_frames: total, fps, width, height } = row;
  if (!(total && total > 0 && fps && fps > 0 && width && height)) {
    const info = await probeMedia(file);
    total = info.numFrames;
    fps = info.fps;
    width = info.width;
    height = info.height;
  }
  const indices = selectFrameIndices(scorer.frames, total);
  const size = scorer.decodeSize?.(width, height);
  const frames = await readVideoFrames(file, indices, { fps, nativeWidth: width, nativeHeight: height, width: size?.width, height: size?.height, beyondEnd: 'clamp' });
  return { frames, indices, row, path: file, kind, width, height, numFrames: total };
}

export interface RunScorerOptions {
  /** Base folder of relative paths (default: the CSV's folder, or cwd for rows). */
  root?: string;
  /** Output CSV: checkpointed while running and read back to resume. */
  output?: string;
  /** Skip rows that already have a value (in the input or in `output`). Default true. */
  resume?: boolean;
  concurrency?: number;
  /** Checkpoint after this many newly scored rows (default 64). */
  checkpointEvery?: number;
  progress?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface RunScorerResult {
  rows: DatasetRow[];
  /** Rows scored in this run, rows skipped because they already had a value. */
  scored: number;
  skipped: number;
  errors: RowError[];
  output?: string;
}

function hasValue(v: unknown): boolean {
  return typeof v === 'number' && Number.isFinite(v);
}

/** Runs `scorer` over a CSV (path) or rows. */
export async function runScorer(source: string | readonly DatasetRow[], scorer: Scorer, options: RunScorerOptions = {}): Promise<RunScorerResult> {
  const rows = typeof source === 'string' ? await readDatasetCsv(source) : source.map((r) => ({ ...r }));
  const root = path.resolve(options.root ?? (typeof source === 'string' ? path.dirname(source) : process.cwd()));
  const col = scorer.column;
  const resume = options.resume ?? true;
  if (resume && options.output && existsSync(options.output)) {
    const prev = await readDatasetCsv(options.output);
    const outRoot = path.dirname(path.resolve(options.output));
    const known = new Map<string, number>();
    for (const r of prev) if (hasValue(r[col])) known.set(resolveRowPath(r.path, outRoot), r[col] as number);
    for (const r of rows) {
      const v = known.get(resolveRowPath(r.path, root));
      if (v !== undefined && !hasValue(r[col])) r[col] = v;
    }
  }
  const todo = rows.map((r, i) => i).filter((i) => !(resume && hasValue(rows[i]![col])));
  for (const i of todo) if (!(col in rows[i]!)) rows[i]![col] = undefined;
  const errors: RowError[] = [];
  const limit = pLimit(options.concurrency ?? 2);
  const every = options.checkpointEvery ?? 64;
  const bar = options.progress ? createProgress({ total: todo.length, label: `score ${scorer.name}`, unit: 'rows' }) : null;
  const outRoot = options.output ? path.dirname(path.resolve(options.output)) : root;
  let sinceCheckpoint = 0;
  let writing: Promise<unknown> = Promise.resolve();
  const checkpoint = () => {
    if (!options.output) return writing;
    const snapshot = rebaseRows(rows, root, outRoot);
    writing = writing.then(() => writeDatasetCsv(options.output!, snapshot));
    return writing;
  };
  let done = 0;
  await Promise.all(
    todo.map((i) =>
      limit(async () => {
        const row = rows[i]!;
        const file = resolveRowPath(row.path, root);
        try {
          const input = await readScorerInput(file, row, scorer);
          const v = await scorer.score(input);
          if (!Number.isFinite(v)) throw new MediaError(file, `scorer ${scorer.name} returned ${v}`);
          row[col] = v;
          if (++sinceCheckpoint >= every) {
            sinceCheckpoint = 0;
            void checkpoint();
          }
        } catch (e) {
          errors.push({ row: i, path: row.path, error: errorLine(e) });
        } finally {
          bar?.tick();
          options.onProgress?.(++done, todo.length);
        }
      }),
    ),
  );
  bar?.done();
  await checkpoint();
  errors.sort((a, b) => a.row - b.row);
  return { rows, scored: todo.length - errors.length, skipped: rows.length - todo.length, errors, output: options.output };
}
