/**
 * `opensora data <op>`: a thin layer over @opensora/data. Each op reads its CSV, calls the data
 * package, writes the output CSV named with the reference's suffixes (datautil's `_info`, `_fmin1`...,
 * `_timestamp`, `_flow`, `_caption`, `_{i}` for shards) unless `-o` is given, and prints what it wrote.
 * Rows that fail (unreadable media, a failed request) are reported on stderr and left out or left
 * empty; they do not end the run, except when every row of a scoring or captioning run fails.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { OpenSoraError, createLogger, createProgress, type Progress } from '@opensora/core';
import {
  captionRows,
  columnsOf,
  computeStats,
  cutScenes,
  datautilOutputPath,
  detectScenesInRows,
  flowScorer,
  aestheticScorer,
  matchScorer,
  tokenizerFromFile,
  formatStatsTable,
  inputStem,
  intersectRows,
  loadTables,
  mergeRows,
  parseTimestampColumn,
  readDatasetCsv,
  runDatautil,
  runScorer,
  sharpnessScorer,
  synthesizeDataset,
  SYNTH_COLOR_NAMES,
  SYNTH_SHAPES,
  SYNTH_DIRECTION_NAMES,
  type SynthColor,
  type SynthShape,
  type SynthDirection,
  writeDatasetCsv,
  writeStatsPng,
  type DatautilOptions,
  type DatautilStep,
  type RowError,
  type Scorer,
} from '@opensora/data';
import { UsageError } from '../errors.js';
import type { CliIO } from '../program.js';

type Opts = Record<string, unknown>;

/** The ops `runDataCommand` knows. */
export const DATA_OPS = ['info', 'filter', 'cut', 'score', 'caption', 'merge', 'split', 'stats', 'synth'] as const;
export type DataOp = (typeof DATA_OPS)[number];

function str(o: Opts, k: string): string | undefined {
  const v = o[k];
  return typeof v === 'string' ? v : undefined;
}
function num(o: Opts, k: string): number | undefined {
  const v = o[k];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
function flag(o: Opts, k: string): boolean {
  return o[k] === true;
}
function positive(o: Opts, k: string, name: string): number | undefined {
  const v = num(o, k);
  if (v !== undefined && !(v >= 1)) throw new UsageError(`--${name} must be at least 1, got ${v}`);
  return v;
}
function nonNegative(o: Opts, k: string, name: string): number | undefined {
  const v = num(o, k);
  if (v !== undefined && v < 0) throw new UsageError(`--${name} must not be negative, got ${v}`);
  return v;
}

/** Progress for a data op: a bar on a TTY (core's createProgress), plain lines on the CLI's stderr otherwise. */
function progressReporter(io: CliIO, label: string, unit = 'rows'): { onProgress: (done: number, total: number) => void; finish: () => void } {
  let bar: Progress | undefined;
  let finished = false;
  const tty = Boolean(process.stderr.isTTY) && !process.env.CI;
  const shim = { isTTY: false, write: (s: string) => (io.stderr(s), true) } as unknown as NodeJS.WriteStream;
  return {
    onProgress(done, total) {
      bar ??= createProgress({ total, label, unit, ...(tty ? {} : { stream: shim, mode: 'lines' as const }) });
      bar.update(done);
      // In line mode reaching the total prints the last line; a bar still has to be stopped.
      if (done >= total && !finished) {
        if (tty) bar.done();
        finished = true;
      }
    },
    finish() {
      if (!finished) bar?.done();
      finished = true;
    },
  };
}

function reportErrors(io: CliIO, errors: readonly RowError[], what: string): void {
  for (const e of errors) io.stderr(`opensora: warning: row ${e.row + 1} (${e.path}): ${e.error}\n`);
  if (errors.length) io.stderr(`opensora: warning: ${errors.length} row(s) ${what}\n`);
}

function reportSteps(io: CliIO, steps: readonly DatautilStep[]): void {
  for (const s of steps) io.stdout(`  ${s.step}: ${s.before} -> ${s.after} rows\n`);
}

function oneArg(args: string[], what = '<csv>'): string {
  const a = args[0];
  if (!a) throw new UsageError(`missing argument ${what}`);
  return a;
}

/** Refuses to overwrite the input (datautil with no operation names its output like its input). */
function checkNotInput(output: string, input: string): void {
  if (path.resolve(output) === path.resolve(input)) {
    throw new UsageError(`the output ${output} would overwrite the input; give -o/--output or an operation that changes the data`);
  }
}

function defaultOutput(csv: string, suffix: string): string {
  return path.join(path.dirname(csv), `${inputStem(csv)}${suffix}.csv`);
}

async function runInfo(csv: string, opts: Opts, io: CliIO): Promise<void> {
  const o: DatautilOptions = { info: true, output: str(opts, 'output'), concurrency: positive(opts, 'workers', 'workers') };
  checkNotInput(datautilOutputPath([csv], o), csv);
  const p = progressReporter(io, 'info');
  const r = await runDatautil([csv], { ...o, onProgress: p.onProgress });
  p.finish();
  reportErrors(io, r.errors, 'could not be read and were left out');
  io.stdout(`wrote ${r.outputs[0]} (${r.rows.length} rows${r.errors.length ? `, ${r.errors.length} unreadable left out` : ''})\n`);
}

async function runFilter(csv: string, opts: Opts, io: CliIO): Promise<void> {
  const o: DatautilOptions = {
    output: str(opts, 'output'),
    fmin: num(opts, 'fmin'),
    fmax: num(opts, 'fmax'),
    hwmin: num(opts, 'hwmin'),
    aesmin: num(opts, 'aesmin'),
    flowmin: num(opts, 'flowmin'),
    matchmin: num(opts, 'matchmin'),
    ocrmax: num(opts, 'ocrmax'),
    removeEmptyCaption: flag(opts, 'removeEmptyCaption') || undefined,
    lang: str(opts, 'lang'),
    ext: flag(opts, 'removeMissing') || undefined,
    cleanCaption: flag(opts, 'cleanCaption') || undefined,
    removePathDuplication: flag(opts, 'dedup') || undefined,
    shuffle: flag(opts, 'shuffle') || undefined,
    seed: num(opts, 'seed'),
    head: nonNegative(opts, 'head', 'head'),
  };
  const ops = Object.entries(o).filter(([k, v]) => k !== 'output' && k !== 'seed' && v !== undefined);
  if (ops.length === 0) {
    throw new UsageError('data filter: nothing to do; give at least one of --fmin, --fmax, --hwmin, --aesmin, --flowmin, --matchmin, --ocrmax, --remove-empty-caption, --lang, --remove-missing, --clean-caption, --dedup, --shuffle, --head');
  }
  checkNotInput(datautilOutputPath([csv], o), csv);
  const r = await runDatautil([csv], o);
  reportSteps(io, r.steps);
  io.stdout(`wrote ${r.outputs[0]} (${r.rows.length} rows)\n`);
}

async function runCut(csv: string, opts: Opts, io: CliIO): Promise<void> {
  const saveDir = str(opts, 'saveDir');
  if (!saveDir) throw new UsageError('data cut: --save-dir <dir> is required');
  const output = path.resolve(str(opts, 'output') ?? defaultOutput(csv, '_clips'));
  checkNotInput(output, csv);
  const root = path.dirname(path.resolve(csv));
  let rows = await readDatasetCsv(csv);
  // Scene detection (scene_detect.py) unless the CSV already carries a timestamp column.
  if (!rows.some((r) => typeof r.timestamp === 'string')) {
    const p = progressReporter(io, 'detect scenes');
    const det = await detectScenesInRows(rows, {
      root,
      adaptiveThreshold: num(opts, 'threshold'),
      minSceneLen: nonNegative(opts, 'minSceneLen', 'min-scene-len'),
      onProgress: p.onProgress,
    });
    p.finish();
    reportErrors(io, det.errors, 'failed scene detection and were left out');
    rows = det.rows;
    const tsFile = defaultOutput(csv, '_timestamp');
    await writeDatasetCsv(tsFile, rows, { columns: columnsOf(rows) });
    io.stdout(`wrote ${tsFile} (${rows.length} rows with scene timestamps)\n`);
  }
  let scenes = 0;
  for (const r of rows) {
    if (typeof r.timestamp !== 'string') continue;
    try {
      scenes += parseTimestampColumn(r.timestamp).length;
    } catch {
      /* reported by cutScenes */
    }
  }
  const p = progressReporter(io, 'cut', 'clips');
  const minSeconds = nonNegative(opts, 'minSeconds', 'min-seconds');
  const maxSeconds = num(opts, 'maxSeconds');
  if (maxSeconds !== undefined && !(maxSeconds > 0)) throw new UsageError(`--max-seconds must be positive, got ${maxSeconds}`);
  const r = await cutScenes(rows, {
    saveDir: path.resolve(saveDir),
    root,
    targetFps: positive(opts, 'targetFps', 'target-fps') ?? null,
    shorterSize: positive(opts, 'shorterSize', 'shorter-size') ?? null,
    minSeconds: minSeconds ?? null,
    maxSeconds: maxSeconds ?? null,
    relativeTo: path.dirname(output),
    onProgress: p.onProgress,
  });
  p.finish();
  reportErrors(io, r.errors, 'could not be cut');
  await writeDatasetCsv(output, r.rows, { columns: columnsOf(r.rows) });
  io.stdout(`cut ${r.clips.length} clip(s) from ${scenes} scene(s)${r.skipped ? ` (${r.skipped} shorter than --min-seconds skipped)` : ''} into ${path.resolve(saveDir)}\n`);
  io.stdout(`wrote ${output} (${r.rows.length} rows)\n`);
}

/** Fails the run when every attempted row failed (an endpoint down, unreadable weights...). */
function failIfAllFailed(code: string, what: string, attempted: number, errors: readonly RowError[]): void {
  if (attempted > 0 && errors.length === attempted) {
    throw new OpenSoraError(code, `${what} failed for all ${attempted} row(s); the first error: ${errors[0]!.error}`);
  }
}

function makeScorer(name: string, opts: Opts): Scorer {
  const clip = str(opts, 'clip');
  switch (name) {
    case 'motion':
      return flowScorer();
    case 'sharpness':
      return sharpnessScorer();
    case 'aesthetic': {
      const mlp = str(opts, 'mlp');
      if (!clip || !mlp) throw new UsageError('--scorer aesthetic needs --clip (CLIP weights: a safetensors file or folder) and --mlp (the aesthetic MLP safetensors)');
      return aestheticScorer({ clip, mlp });
    }
    case 'match': {
      if (!clip) throw new UsageError('--scorer match needs --clip (CLIP weights: a safetensors file or folder) and a tokenizer (--tokenizer, default <clip folder>/tokenizer.json)');
      const dir = existsSync(clip) && statSync(clip).isDirectory() ? clip : path.dirname(clip);
      const tokenizer = str(opts, 'tokenizer') ?? path.join(dir, 'tokenizer.json');
      if (!existsSync(tokenizer)) throw new UsageError(`--scorer match: tokenizer ${tokenizer} not found (pass --tokenizer FILE)`);
      const config = path.join(path.dirname(tokenizer), 'tokenizer_config.json');
      return matchScorer({ clip, tokenize: tokenizerFromFile(tokenizer, existsSync(config) ? config : undefined) });
    }
    default:
      throw new UsageError(`unknown scorer '${name}' (motion, sharpness, aesthetic, match)`);
  }
}

async function runScore(csv: string, opts: Opts, io: CliIO): Promise<void> {
  const scorer = makeScorer(str(opts, 'scorer') ?? 'motion', opts);
  const output = path.resolve(str(opts, 'output') ?? defaultOutput(csv, `_${scorer.column}`));
  checkNotInput(output, csv);
  const p = progressReporter(io, `score ${scorer.name}`);
  const r = await runScorer(csv, scorer, { output, concurrency: positive(opts, 'workers', 'workers'), onProgress: p.onProgress });
  p.finish();
  await scorer.dispose?.();
  reportErrors(io, r.errors, `could not be scored (their '${scorer.column}' is left empty; a re-run retries them)`);
  failIfAllFailed('E_SCORE', `scorer ${scorer.name}`, r.scored + r.errors.length, r.errors);
  io.stdout(`scored ${r.scored} row(s) into column '${scorer.column}'${r.skipped ? `, ${r.skipped} already scored` : ''}\n`);
  io.stdout(`wrote ${output} (${r.rows.length} rows)\n`);
}

async function runCaption(csv: string, opts: Opts, io: CliIO): Promise<void> {
  const endpoint = str(opts, 'endpoint');
  if (!endpoint) throw new UsageError('data caption: --endpoint <url> is required');
  if (!/^https?:\/\//i.test(endpoint)) throw new UsageError(`--endpoint must be an http(s) URL, got '${endpoint}'`);
  const output = path.resolve(str(opts, 'output') ?? defaultOutput(csv, '_caption'));
  checkNotInput(output, csv);
  const logger = createLogger({ name: 'opensora:caption', sink: (_level, line) => io.stderr(line + '\n') });
  if (!logger.enabled('debug')) logger.level = 'error'; // failed rows are reported once, below; debug shows the retries
  const r = await captionRows(csv, {
    logger,
    baseUrl: endpoint,
    model: str(opts, 'model') ?? 'llava-v1.6-mistral-7b',
    apiKey: str(opts, 'apiKey') ?? process.env.OPENAI_API_KEY,
    concurrency: positive(opts, 'concurrency', 'concurrency'),
    output,
    progress: Boolean(process.stderr.isTTY) && !process.env.CI,
  });
  reportErrors(io, r.errors, 'could not be captioned (a re-run retries them)');
  failIfAllFailed('E_CAPTION', 'captioning', r.captioned + r.errors.length, r.errors);
  io.stdout(`captioned ${r.captioned} row(s)${r.skipped ? `, ${r.skipped} already captioned` : ''} (${r.requests} request(s))\n`);
  io.stdout(`wrote ${output} (${r.rows.length} rows)\n`);
}

async function runMerge(inputs: string[], opts: Opts, io: CliIO): Promise<void> {
  const out = str(opts, 'output');
  if (!out) throw new UsageError('data merge: -o/--output <csv> is required');
  if (inputs.length === 0) throw new UsageError('data merge: give at least one input CSV');
  const output = path.resolve(out);
  const root = path.dirname(output);
  const tables = [];
  for (const p of inputs) tables.push(await loadTables([p], root));
  const rows = flag(opts, 'intersection') ? tables.slice(1).reduce((acc, t) => intersectRows(acc, t), tables[0]!) : mergeRows(tables);
  await writeDatasetCsv(output, rows, { columns: columnsOf(rows) });
  const sizes = tables.map((t) => t.length).join(' + ');
  io.stdout(`${flag(opts, 'intersection') ? 'intersected' : 'merged'} ${sizes} rows on path\n`);
  io.stdout(`wrote ${output} (${rows.length} rows)\n`);
}

async function runSplit(csv: string, opts: Opts, io: CliIO): Promise<void> {
  const n = num(opts, 'num');
  if (n === undefined || !Number.isInteger(n) || n < 1) throw new UsageError(`-n/--num must be a positive integer, got ${String(opts.num)}`);
  const o: DatautilOptions = { shard: n, shuffle: flag(opts, 'shuffle') || undefined, seed: num(opts, 'seed') };
  // datautil names shards `_{i}` only for N > 1; one shard is `_0` here too, so that the input is never overwritten.
  if (n === 1) o.output = datautilOutputPath([csv], o).replace(/\.csv$/i, '_0.csv');
  const r = await runDatautil([csv], o);
  reportSteps(io, r.steps);
  for (const f of r.outputs) io.stdout(`wrote ${f}\n`);
  io.stdout(`split ${r.rows.length} rows into ${r.outputs.length} shard(s)\n`);
}

async function runStats(csv: string, opts: Opts, io: CliIO): Promise<void> {
  const rows = await readDatasetCsv(csv);
  const stats = computeStats(rows);
  io.stdout(formatStatsTable(stats) + '\n');
  const png = str(opts, 'png');
  if (png) {
    await writeStatsPng(path.resolve(png), stats, { title: `${path.basename(csv)}: ${stats.rows} rows, ${stats.videos} videos, ${stats.images} images` });
    io.stdout(`wrote ${path.resolve(png)}\n`);
  }
}

async function runSynth(opts: Opts, io: CliIO): Promise<void> {
  const out = str(opts, 'out');
  if (!out) throw new UsageError('data synth: --out <dir> is required');
  const numVideos = nonNegative(opts, 'videos', 'videos');
  const numImages = nonNegative(opts, 'images', 'images');
  if ((numVideos ?? 12) + (numImages ?? 4) === 0) throw new UsageError('data synth: --videos and --images are both 0; nothing to generate');
  const vocab = (key: string, all: readonly string[]): string[] | undefined => {
    const v = opts[key] as string[] | undefined;
    if (!v) return undefined;
    const bad = v.filter((x) => !all.includes(x));
    if (bad.length) throw new UsageError(`data synth: unknown --${key} ${bad.join(', ')} (use ${all.join(', ')})`);
    return v;
  };
  const list = <T>(flagName: string, parse: (v: string) => T | null, what: string): T[] | undefined => {
    const v = opts[flagName] as string[] | undefined;
    if (!v) return undefined;
    const parsed = v.map(parse);
    const bad = v.filter((_, i) => parsed[i] === null);
    if (bad.length) throw new UsageError(`data synth: --${flagName} takes ${what}, got ${bad.map((b) => `'${b}'`).join(', ')}`);
    return parsed as T[];
  };
  const lengths = list('lengths', (x) => (/^\d+$/.test(x) && Number(x) >= 1 ? Number(x) : null), 'whole frame counts of at least 1');
  const fps = list('fps', (x) => (Number.isFinite(Number(x)) && Number(x) > 0 ? Number(x) : null), 'positive frame rates');
  const sizes = list(
    'sizes',
    (x): [number, number] | null => {
      const m = /^(\d+)x(\d+)$/.exec(x);
      const hw: [number, number] = [Number(m?.[1]), Number(m?.[2])];
      return m && hw.every((n) => n >= 8 && n % 2 === 0) ? hw : null;
    },
    'sizes written HxW (like 32x48), both even and at least 8',
  );
  const cutFraction = num(opts, 'cutFraction');
  if (cutFraction !== undefined && !(cutFraction >= 0 && cutFraction <= 1)) throw new UsageError(`data synth: --cut-fraction must be between 0 and 1, got ${cutFraction}`);
  const r = await synthesizeDataset({
    outDir: out,
    numVideos,
    numImages,
    lengths,
    fps,
    sizes,
    cutFraction,
    seed: num(opts, 'seed'),
    colors: vocab('colors', SYNTH_COLOR_NAMES) as SynthColor[] | undefined,
    shapes: vocab('shapes', SYNTH_SHAPES) as SynthShape[] | undefined,
    directions: vocab('directions', SYNTH_DIRECTION_NAMES) as SynthDirection[] | undefined,
  });
  const videos = r.items.filter((i) => i.kind === 'video').length;
  const cuts = r.items.filter((i) => i.cuts.length > 0).length;
  io.stdout(`generated ${videos} video(s) (${cuts} with hard cuts) and ${r.items.length - videos} image(s) in ${path.resolve(out)}\n`);
  io.stdout(`wrote ${r.csvPath} (${r.rows.length} rows)\n`);
}

/** Runs `opensora data <name> ...args` with commander's parsed options. */
export async function runDataCommand(name: string, args: string[], opts: Record<string, unknown>, global: { backend?: string }, io: CliIO): Promise<void> {
  void global; // no tensor work in these ops
  switch (name as DataOp) {
    case 'info':
      return runInfo(oneArg(args), opts, io);
    case 'filter':
      return runFilter(oneArg(args), opts, io);
    case 'cut':
      return runCut(oneArg(args), opts, io);
    case 'score':
      return runScore(oneArg(args), opts, io);
    case 'caption':
      return runCaption(oneArg(args), opts, io);
    case 'merge':
      return runMerge(args, opts, io);
    case 'split':
      return runSplit(oneArg(args), opts, io);
    case 'stats':
      return runStats(oneArg(args), opts, io);
    case 'synth':
      return runSynth(opts, io);
    default:
      throw new UsageError(`unknown data operation '${name}' (${DATA_OPS.join(', ')})`);
  }
}
