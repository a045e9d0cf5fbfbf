/**
 * The `opensora` command end to end, in process (`runCli` with a capturing io): help and usage
 * errors for every command, doctor, training (resume, weights-only, start-from-scratch), the
 * multi-stage pipeline, and every sampling flow on a tiny model trained here for two steps.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFrames, probeMedia, synthesizeDataset, type DatasetRow } from '@opensora/data';
import { cli, type Run } from './helpers.js';



/** Exit 2 with one error line (commander may add "(run with --help for usage)"), no stack trace. */
function expectUsageError(r: Run, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(2);
  const errors = r.stderr.split('\n').filter((l) => /error/i.test(l));
  expect(errors, r.stderr).toHaveLength(1);
  expect(errors[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stdout).toBe('');
}

/** Every `--flag` of a help text. */
function flagsOf(help: string): string[] {
  return [...help.matchAll(/(?:^|\s)(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!);
}

/** Mean absolute difference of two uint8 RGB frames. */
function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

async function videoFrames(file: string): Promise<Uint8Array[]> {
  const frames: Uint8Array[] = [];
  await decodeFrames(file, (f) => {
    frames.push(f.data.slice());
  });
  return frames;
}

async function pngRgb(file: string): Promise<{ data: Uint8Array; width: number; height: number }> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

let dir: string;
let csv: string;
let rows: DatasetRow[];
/** The checkpoint every sampling test uses (2 steps of the tiny preset). */
let ckpt: string;
let refImage: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'oscli-'));
  const r = await synthesizeDataset({
    outDir: path.join(dir, 'ds'),
    seed: 1,
    numVideos: 4,
    numImages: 4,
    sizes: [[32, 32]],
    imageSizes: [[32, 32]],
    lengths: [8],
    concurrency: 2,
  });
  csv = r.csvPath;
  rows = r.rows;
  refImage = path.join(dir, 'ds', rows.find((x) => x.num_frames === 1)!.path);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('opensora --help, --version and usage errors', () => {
  const commands: Array<{ argv: string[]; flags: string[] }> = [
    { argv: [], flags: ['--version', '--backend', '--accel', '--help'] },
    { argv: ['doctor'], flags: ['--json'] },
    {
      argv: ['sample'],
      flags: [
        '--config', '--prompt', '--prompt-path', '--resolution', '--aspect-ratio', '--image-size', '--num-frames', '--duration',
        '--fps', '--frame-interval', '--seed', '--num-sampling-steps', '--steps', '--scheduler', '--cfg-scale', '--cfg-channel',
        '--reference-path', '--mask-strategy', '--loop', '--condition-frame-length', '--num-sample', '--batch-size', '--save-dir',
        '--sample-name', '--prompt-as-path', '--contact-sheet', '--model', '--vae', '--text-encoder', '--dtype',
      ],
    },
    {
      argv: ['train'],
      flags: ['--config', '--preset', '--data', '--outputs', '--max-steps', '--epochs', '--ckpt-every', '--log-every', '--seed', '--set', '--load', '--ckpt-path', '--start-from-scratch'],
    },
    {
      argv: ['pipeline'],
      flags: ['--stages', '--config', '--preset', '--data', '--outputs', '--max-steps', '--epochs', '--ckpt-every', '--log-every', '--seed', '--set'],
    },
    { argv: ['data'], flags: [] },
    { argv: ['data', 'info'], flags: ['--output', '--workers'] },
    {
      argv: ['data', 'filter'],
      flags: ['--output', '--fmin', '--fmax', '--hwmin', '--aesmin', '--flowmin', '--matchmin', '--ocrmax', '--remove-empty-caption', '--lang', '--remove-missing', '--clean-caption', '--dedup', '--shuffle', '--seed', '--head'],
    },
    { argv: ['data', 'cut'], flags: ['--save-dir', '--output', '--threshold', '--min-scene-len', '--target-fps', '--shorter-size', '--min-seconds', '--max-seconds'] },
    { argv: ['data', 'score'], flags: ['--scorer', '--clip', '--mlp', '--tokenizer', '--output', '--workers'] },
    { argv: ['data', 'caption'], flags: ['--endpoint', '--model', '--api-key', '--output', '--concurrency'] },
    { argv: ['data', 'merge'], flags: ['--output', '--intersection'] },
    { argv: ['data', 'split'], flags: ['--num', '--shuffle', '--seed'] },
    { argv: ['data', 'stats'], flags: ['--png'] },
    { argv: ['data', 'synth'], flags: ['--colors', '--shapes', '--directions', '--lengths', '--fps', '--sizes', '--cut-fraction', '--out', '--videos', '--images', '--seed'] },
    { argv: ['bucket'], flags: [] },
    { argv: ['bucket', 'stats'], flags: ['--bucket-config', '--preset', '--frame-interval', '--seed', '--num-replicas', '--png'] },
  ];

  it.each(commands)('opensora $argv --help lists its flags', async ({ argv, flags }) => {
    const r = await cli([...argv, '--help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`Usage: opensora${argv.length ? ' ' + argv.join(' ') : ''}`);
    const listed = flagsOf(r.stdout);
    for (const f of [...flags, '--help']) expect(listed, `${argv.join(' ')} --help lacks ${f}`).toContain(f);
    // Nothing undocumented: every listed flag is one the test knows about.
    if (flags.length) expect(new Set(listed)).toEqual(new Set([...flags, '--help']));
  });

  it('the top-level help lists every command', async () => {
    const r = await cli(['--help']);
    for (const c of ['doctor', 'sample', 'train', 'pipeline', 'data', 'bucket']) expect(r.stdout).toMatch(new RegExp(`^\\s+${c}\\b`, 'm'));
    const d = await cli(['data', '--help']);
    for (const c of ['info', 'filter', 'cut', 'score', 'caption', 'merge', 'split', 'stats', 'synth']) expect(d.stdout).toMatch(new RegExp(`^\\s+${c}\\b`, 'm'));
  });

  it('--version prints the version', async () => {
    const r = await cli(['--version']);
    expect(r.code).toBe(0);
    const pkg = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../package.json'), 'utf8')) as { version: string };
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('an unknown command, flag or bad value ends with exit 2 and one line', async () => {
    expectUsageError(await cli(['frobnicate']), /unknown command 'frobnicate'/);
    expectUsageError(await cli(['--bogus']), /unknown option '--bogus'/);
    expectUsageError(await cli(['sample', '--no-such-flag']), /unknown option '--no-such-flag'/);
    expectUsageError(await cli(['train', '--max-steps', '1.5']), /--max-steps must be an integer, got '1.5'/);
    expectUsageError(await cli(['sample', '--scheduler', 'euler']), /'euler' is invalid/);
    expectUsageError(await cli(['sample', '--dtype', 'fp8']), /'fp8' is invalid/);
    expectUsageError(await cli(['data', 'stats']), /missing required argument 'csv'/);
  });
});

describe('opensora doctor', () => {
  it('reports the backend, ffmpeg/ffprobe, memory and what can run', async () => {
    const r = await cli(['doctor']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^backend\s+\S+/m);
    expect(r.stdout).toMatch(/^ffmpeg\s+ffmpeg version/m);
    expect(r.stdout).toMatch(/^ffprobe\s+ffprobe version/m);
    expect(r.stdout).toMatch(/^memory\s+\d+\.\d GiB total/m);
    expect(r.stdout).toContain('can run:');
    expect(r.stdout).toContain('tiny presets');
  });

  it('--json gives the same report as JSON', async () => {
    const r = await cli(['doctor', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { backend: { name: string }; cpus: number; memoryGiB: number; ffmpeg: { path: string | null }; ffprobe: { path: string | null }; canRun: string[] };
    expect(r.stdout).toContain(j.backend.name);
    expect(j.backend.name.length).toBeGreaterThan(0);
    expect(j.cpus).toBe(os.cpus().length);
    expect(j.memoryGiB).toBeCloseTo(os.totalmem() / 2 ** 30, 6);
    expect(j.ffmpeg.path).toBeTruthy();
    expect(j.ffprobe.path).toBeTruthy();
    expect(j.canRun.length).toBeGreaterThanOrEqual(2);
  });
});

const modelBytes = (ckptDir: string) => readFileSync(path.join(ckptDir, 'model', 'model.safetensors'));
const runningStates = (ckptDir: string) => JSON.parse(readFileSync(path.join(ckptDir, 'running_states.json'), 'utf8')) as { step: number; global_step: number; epoch: number };

describe('opensora train', () => {
  let base: string;
  const trainArgs = () => ['train', '--preset', 'tiny', '--data', csv, '--set', 'lr=5e-4', '--seed', '7'];

  beforeAll(async () => {
    base = path.join(dir, 'train-base');
    const r = await cli([...trainArgs(), '--outputs', base, '--max-steps', '2', '--ckpt-every', '1']);
    expect(r.code, r.stderr).toBe(0);
    ckpt = path.join(base, 'epoch0-global_step2');
  });

  it('trains the tiny preset, checkpoints every k steps and applies --set', () => {
    expect(existsSync(path.join(base, 'epoch0-global_step1', 'model', 'model.safetensors'))).toBe(true);
    expect(existsSync(path.join(ckpt, 'model', 'model.safetensors'))).toBe(true);
    expect(runningStates(ckpt).global_step).toBe(2);
    const cfg = JSON.parse(readFileSync(path.join(base, 'config.json'), 'utf8')) as { lr: number; seed: number; name: string };
    expect(cfg.lr).toBe(5e-4);
    expect(cfg.name).toBe('tiny');
  });

  it('--load resumes exactly: 1 step + resume 1 step equals the straight 2-step run', async () => {
    const out = path.join(dir, 'train-resume');
    const r = await cli([...trainArgs(), '--outputs', out, '--max-steps', '2', '--load', path.join(base, 'epoch0-global_step1')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^trained 1 steps \(global step 2, epoch 0\)/);
    const resumed = path.join(out, 'epoch0-global_step2');
    expect(modelBytes(resumed).equals(modelBytes(ckpt))).toBe(true);
  });

  it('--ckpt-path loads weights only (counters from zero), --start-from-scratch resets the counters of --load', async () => {
    const wOut = path.join(dir, 'train-weights');
    const w = await cli([...trainArgs(), '--outputs', wOut, '--max-steps', '1', '--ckpt-path', ckpt]);
    expect(w.code, w.stderr).toBe(0);
    expect(w.stdout).toMatch(/^trained 1 steps \(global step 1, epoch 0\)/);
    const wCkpt = path.join(wOut, 'epoch0-global_step1');
    expect(runningStates(wCkpt).global_step).toBe(1);
    // Started from the trained weights, not from the seeded initialisation of a fresh run.
    expect(modelBytes(wCkpt).equals(modelBytes(path.join(base, 'epoch0-global_step1')))).toBe(false);

    const sOut = path.join(dir, 'train-scratch');
    const s = await cli([...trainArgs(), '--outputs', sOut, '--max-steps', '1', '--load', ckpt, '--start-from-scratch']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toMatch(/^trained 1 steps \(global step 1, epoch 0\)/);
    expect(runningStates(path.join(sOut, 'epoch0-global_step1')).global_step).toBe(1);
  });

  it('bad train inputs end with exit 2 and one line', async () => {
    expectUsageError(await cli(['train', '--preset', 'tiny', '--data', csv, '--start-from-scratch']), /--start-from-scratch needs --load/);
    expectUsageError(await cli(['train', '--data', csv, '--load', ckpt, '--ckpt-path', ckpt]), /not both/);
    const missing = path.join(dir, 'no-such.csv');
    expectUsageError(await cli(['train', '--preset', 'tiny', '--data', missing, '--outputs', path.join(dir, 'x'), '--max-steps', '1']), /no-such\.csv/);
    expectUsageError(await cli(['train', '--preset', 'tiny', '--data', csv, '--outputs', path.join(dir, 'x'), '--set', 'lr']), /Override 'lr'/);
    const badValue = await cli(['train', '--preset', 'tiny', '--data', csv, '--outputs', path.join(dir, 'x'), '--set', 'lr=fast']);
    expect(badValue.code).toBe(2);
    expect(badValue.stderr).toMatch(/error: .*\n\s+- lr: /); // the config issue list: one issue per line
    expect(badValue.stderr).not.toMatch(/^\s+at /m);
    expectUsageError(await cli(['train', '--preset', 'no-such-preset', '--data', csv]), /no-such-preset/);
    expectUsageError(await cli(['pipeline', '--load', ckpt]), /unknown option '--load'/); // a pipeline resumes by itself
  });
});

describe('opensora pipeline', () => {
  it('runs the stages in order, each from the previous one, and a rerun skips finished stages', async () => {
    const out = path.join(dir, 'pipe');
    const args = ['pipeline', '--stages', 'tiny-image', 'tiny-stage1', '--max-steps', '2', '--data', csv, '--outputs', out];
    const r = await cli(args);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => l.split('\t'));
    expect(lines.map((l) => [l[0], l[1]])).toEqual([
      ['tiny-image', 'done'],
      ['tiny-stage1', 'done'],
    ]);
    expect(r.stderr).toContain('stage tiny-stage1: done (previous-stage)');
    for (const l of lines) expect(existsSync(path.join(l[2]!, 'model', 'model.safetensors'))).toBe(true);
    expect(runningStates(lines[1]![2]!).global_step).toBe(2);

    const again = await cli(args);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim().split('\n').map((l) => l.split('\t'))).toEqual(lines.map((l) => [l[0], 'skipped', l[2]]));
  });
});

describe('opensora sample', () => {
  let out: string;
  const sample = (saveDir: string, ...args: string[]) => cli(['sample', '--model', ckpt, '--steps', '2', '--seed', '3', '--save-dir', path.join(out, saveDir), ...args]);
  const files = (saveDir: string) => readdirSync(path.join(out, saveDir)).filter((f) => !f.startsWith('.')).sort();

  beforeAll(() => {
    out = path.join(dir, 'samples');
  });

  it('text-to-image writes a png of the asked size', async () => {
    const r = await sample('t2i', '--prompt', 'a red circle on a blue background', '--image-size', '32', '32', '--num-frames', '1');
    expect(r.code, r.stderr).toBe(0);
    const file = path.join(out, 't2i', 'sample_0.png');
    expect(r.stdout).toBe(`Saved to ${file}\n`);
    const info = await probeMedia(file);
    expect([info.kind, info.numFrames, info.height, info.width]).toEqual(['image', 1, 32, 32]);
  });

  it('text-to-video writes an H.264 mp4 that decodes to the asked frames and size, and a contact sheet', async () => {
    const r = await sample('t2v', '-p', 'a red circle moving left on a blue background', '--image-size', '32', '48', '--num-frames', '8', '--contact-sheet');
    expect(r.code, r.stderr).toBe(0);
    expect(files('t2v')).toEqual(['sample_0.mp4', 'sample_0_sheet.png']);
    const info = await probeMedia(path.join(out, 't2v', 'sample_0.mp4'));
    expect([info.kind, info.codec, info.numFrames, info.height, info.width, info.fps]).toEqual(['video', 'h264', 8, 32, 48, 24]);
    expect(await videoFrames(path.join(out, 't2v', 'sample_0.mp4'))).toHaveLength(8);
    const sheet = await sharp(path.join(out, 't2v', 'sample_0_sheet.png')).metadata();
    expect([sheet.width, sheet.height]).toEqual([8 * 48 + 7 * 2, 32]); // 8 frames in a row, 2 px gaps
  });

  it('--resolution with --aspect-ratio picks the size from the bucket tables (tiny-32 of the trainer)', async () => {
    const r = await sample('res', '-p', 'x', '--resolution', 'tiny-32', '--aspect-ratio', '3:2', '--num-frames', '1');
    expect(r.code, r.stderr).toBe(0);
    const info = await probeMedia(path.join(out, 'res', 'sample_0.png'));
    expect([info.height, info.width]).toEqual([48, 32]); // H:W = 3:2, key 1.50
    const dec = await sample('res2', '-p', 'x', '--resolution', 'tiny-32', '--aspect-ratio', '0.67', '--num-frames', '1');
    expect(dec.code, dec.stderr).toBe(0);
    const info2 = await probeMedia(path.join(out, 'res2', 'sample_0.png'));
    expect([info2.height, info2.width]).toEqual([32, 48]);
  });

  it('--duration with --fps and --frame-interval gives seconds * fps / interval frames, written at fps / interval', async () => {
    const r = await sample('dur', '-p', 'x', '--image-size', '32', '32', '--duration', '1', '--fps', '16', '--frame-interval', '2');
    expect(r.code, r.stderr).toBe(0);
    const info = await probeMedia(path.join(out, 'dur', 'sample_0.mp4'));
    expect([info.numFrames, info.fps]).toEqual([8, 8]);
    expectUsageError(await sample('dur', '-p', 'x', '--image-size', '32', '32', '--duration', '1', '--num-frames', '4'), /--num-frames or --duration, not both/);
  });

  it('--prompt-path reads one prompt per line; --num-sample 2 names files sample_<i>-<k>', async () => {
    const promptFile = path.join(dir, 'prompts.txt');
    writeFileSync(promptFile, 'a red circle on a blue background\na green square on a white background\n');
    const r = await sample('multi', '--prompt-path', promptFile, '--image-size', '32', '32', '--num-frames', '1', '--num-sample', '2');
    expect(r.code, r.stderr).toBe(0);
    expect(files('multi')).toEqual(['sample_0-0.png', 'sample_0-1.png', 'sample_1-0.png', 'sample_1-1.png']);
    const a = await pngRgb(path.join(out, 'multi', 'sample_0-0.png'));
    const b = await pngRgb(path.join(out, 'multi', 'sample_0-1.png'));
    expect(meanAbsDiff(a.data, b.data)).toBeGreaterThan(1); // two different draws
  });

  it('--sample-name sets the prefix; --prompt-as-path names files after the prompt; --batch-size batches prompts', async () => {
    const r = await sample('named', '-p', 'one', 'two', '--image-size', '32', '32', '--num-frames', '1', '--sample-name', 'mine', '--batch-size', '2');
    expect(r.code, r.stderr).toBe(0);
    expect(files('named')).toEqual(['mine_0.png', 'mine_1.png']);
    const p = await sample('bypath', '-p', 'a blue square', '--image-size', '32', '32', '--num-frames', '1', '--prompt-as-path');
    expect(p.code, p.stderr).toBe(0);
    expect(files('bypath')).toEqual(['a blue square.png']);
  });

  it('image-to-video: --reference-path with --mask-strategy 0 freezes the first frame to the reference', async () => {
    const r = await sample('i2v', '-p', 'a shape moving right', '--image-size', '32', '32', '--num-frames', '8', '--reference-path', refImage, '--mask-strategy', '0');
    expect(r.code, r.stderr).toBe(0);
    const frames = await videoFrames(path.join(out, 'i2v', 'sample_0.mp4'));
    expect(frames).toHaveLength(8);
    const ref = await pngRgb(refImage);
    const d0 = meanAbsDiff(frames[0]!, ref.data);
    expect(d0).toBeLessThan(4); // H.264 and the latent round trip only (measured 1.4 of 255)
    expect(meanAbsDiff(frames[7]!, ref.data)).toBeGreaterThan(10 * d0); // later frames are generated

    // The reference's JSON-in-prompt form gives the same file.
    const j = await sample('i2v-json', '-p', `a shape moving right${JSON.stringify({ reference_path: refImage, mask_strategy: '0' })}`, '--image-size', '32', '32', '--num-frames', '8');
    expect(j.code, j.stderr).toBe(0);
    expect(readFileSync(path.join(out, 'i2v-json', 'sample_0.mp4')).equals(readFileSync(path.join(out, 'i2v', 'sample_0.mp4')))).toBe(true);
  });

  it('--loop 2 --condition-frame-length 1 chains clips: loop * (T - L) + L pixel frames', async () => {
    const r = await sample('loop', '-p', 'a red circle moving down', '--image-size', '32', '32', '--num-frames', '8', '--loop', '2', '--condition-frame-length', '1');
    expect(r.code, r.stderr).toBe(0);
    const info = await probeMedia(path.join(out, 'loop', 'sample_0.mp4'));
    expect(info.numFrames).toBe(2 * (8 - 1) + 1);
    expect(await videoFrames(path.join(out, 'loop', 'sample_0.mp4'))).toHaveLength(15);
    expectUsageError(await sample('loop', '-p', 'x', '--image-size', '32', '32', '--num-frames', '8', '--loop', '2', '--condition-frame-length', '8'), /condition frame length 8/);
  });

  it('--scheduler dpm-solver --steps 4, --cfg-scale/--cfg-channel, --dtype bf16 and a --config file', async () => {
    const r = await sample('dpm', '-p', 'a red circle', '--image-size', '32', '32', '--num-frames', '1', '--scheduler', 'dpm-solver', '--steps', '4', '--cfg-scale', '4.5', '--cfg-channel', '2');
    expect(r.code, r.stderr).toBe(0);
    const dpm = await pngRgb(path.join(out, 'dpm', 'sample_0.png'));
    expect([dpm.width, dpm.height]).toEqual([32, 32]);
    const b = await sample('bf16', '-p', 'a red circle', '--image-size', '32', '32', '--num-frames', '1', '--dtype', 'bf16');
    expect(b.code, b.stderr).toBe(0);
    expect(existsSync(path.join(out, 'bf16', 'sample_0.png'))).toBe(true);

    const cfgFile = path.join(dir, 'infer.json');
    writeFileSync(cfgFile, JSON.stringify({ prompt: ['a red circle on a blue background'], imageSize: [32, 32], numFrames: 1, sampleName: 'fromcfg' }));
    const c = await sample('cfg', '--config', cfgFile);
    expect(c.code, c.stderr).toBe(0);
    expect(files('cfg')).toEqual(['fromcfg_0.png']);
    // Same prompt, seed and sampler as the text-to-image test: the same pixels.
    expect(readFileSync(path.join(out, 'cfg', 'fromcfg_0.png')).equals(readFileSync(path.join(out, 't2i', 'sample_0.png')))).toBe(true);
  });

  it('--model names a training preset for random weights with its VAE and text encoder', async () => {
    const r = await cli(['sample', '--model', 'tiny', '-p', 'x', '--image-size', '32', '32', '--num-frames', '1', '--steps', '2', '--save-dir', path.join(out, 'preset')]);
    expect(r.code, r.stderr).toBe(0);
    expect(files('preset')).toEqual(['sample_0.png']);
  });

  it('bad sample inputs end with exit 2 and one line', async () => {
    expectUsageError(await sample('e', '--image-size', '32', '32'), /no prompts/);
    expectUsageError(await sample('e', '-p', 'x'), /give the size/);
    expectUsageError(await sample('e', '-p', 'x', '--image-size', '32'), /--image-size takes two numbers/);
    expectUsageError(await sample('e', '-p', 'x', '--resolution', '240p', '--aspect-ratio', 'wide'), /--aspect-ratio 'wide' is not H:W/);
    expectUsageError(await sample('e', '-p', 'x', '--resolution', '240p', '--aspect-ratio', '7:3'), /has no aspect ratio 2\.33/);
    expectUsageError(await sample('e', '-p', 'x', '--resolution', '9000p'), /unknown resolution '9000p'/);
    expectUsageError(await sample('e', '--prompt-path', path.join(dir, 'none.txt'), '--image-size', '32', '32'), /cannot read prompt file/);
    expectUsageError(await sample('e', '-p', 'x', '--image-size', '31', '31', '--num-frames', '1'), /not divisible/);
    const missingRef = path.join(dir, 'missing.png');
    expectUsageError(await sample('e', '-p', 'x', '--image-size', '32', '32', '--num-frames', '8', '--reference-path', missingRef, '--mask-strategy', '0'), /missing\.png: no such file/);
    expectUsageError(await sample('e', '-p', 'x', '--image-size', '32', '32', '--num-frames', '8', '--reference-path', refImage, '--mask-strategy', '0,0,x'), /group 1 of 1 .*not an integer/);
    expectUsageError(await sample('e', '-p', 'x', '--image-size', '32', '32', '--num-frames', '8', '--reference-path', refImage, '--mask-strategy', '0;0,0,0,0,1,0,9'), /group 2 of 2 .*7 fields/);
    expectUsageError(await cli(['sample', '--model', path.join(dir, 'nothing-here'), '-p', 'x', '--image-size', '32', '32']), /neither a file\/folder nor a preset/);
  });
});
