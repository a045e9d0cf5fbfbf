import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, expectOneLineError } from './helpers.js';



function writeCsv(file: string, groups: Array<[count: number, numFrames: number, height: number, width: number]>): string {
  const lines = ['path,num_frames,height,width'];
  let k = 0;
  for (const [count, t, h, w] of groups) for (let i = 0; i < count; i++) lines.push(`m${k++}.${t === 1 ? 'png' : 'mp4'},${t},${h},${w}`);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

let dir: string;
let official: string;
let tiny: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'oscli-bucket-'));
  // 144p landscape (0.56): 34 clips of 60 frames and 48 images; two 16x16 images fit no bucket.
  official = writeCsv(path.join(dir, 'official.csv'), [
    [34, 60, 144, 256],
    [48, 1, 144, 256],
    [2, 1, 16, 16],
  ]);
  // tiny-32: 10 square images, 6 clips of 8 frames at 32x48 (aspect 0.67), 2 images too small.
  tiny = writeCsv(path.join(dir, 'tiny.csv'), [
    [10, 1, 32, 32],
    [6, 8, 32, 48],
    [2, 1, 16, 16],
  ]);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('opensora bucket stats', () => {
  it('uses the stage2 preset by default (frame interval 3, drop last) and prints samples and steps', async () => {
    const r = await cli(['bucket', 'stats', official]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("preset 'stage2'");
    expect(r.stdout).toContain('frame interval 3');
    expect(r.stdout).toContain('84 rows, 82 in buckets (97.6%), 2 without a bucket');
    // 144p T=16 (60 > 16 * 3) batch 17: 34 -> 2 batches; 144p T=1 batch 48: 48 -> 1 batch.
    expect(r.stdout).toMatch(/144p\s+16\s+0\.56\s+16x144x256\s+17\s+34\s+2/);
    expect(r.stdout).toMatch(/144p\s+1\s+0\.56\s+1x144x256\s+48\s+48\s+1/);
    expect(r.stdout).toContain('steps per epoch: 3');
  });

  it('--frame-interval 1 puts the 60-frame clips in the T=32 bucket', async () => {
    const a = await cli(['bucket', 'stats', official, '--frame-interval', '1']);
    expect(a.code, a.stderr).toBe(0);
    // 60 > 32 * 1 (and not > 64), so T=32 with batch 9: floor(34 / 9) = 3 batches; plus 1 image batch.
    expect(a.stdout).toMatch(/144p\s+32\s+0\.56\s+32x144x256\s+9\s+34\s+3/);
    expect(a.stdout).toContain('steps per epoch: 4');
  });

  it('takes a tiny trainer preset with its custom resolutions, and splits steps across ranks', async () => {
    const r = await cli(['bucket', 'stats', tiny, '--preset', 'tiny']);
    expect(r.code, r.stderr).toBe(0);
    // tiny: { 'tiny-32': { 1: [1, 4], 4: [1, 2] } }: 10 images -> 2 batches (2 dropped), 6 clips -> 3 batches.
    expect(r.stdout).toContain('18 rows, 16 in buckets (88.9%), 2 without a bucket, 2 dropped by dropLast');
    expect(r.stdout).toContain('steps per epoch: 5');
    const two = await cli(['bucket', 'stats', tiny, '--preset', 'tiny', '--num-replicas', '2']);
    expect(two.code, two.stderr).toBe(0);
    expect(two.stdout).toContain('5 micro-batches, 2 steps per rank x 2 rank(s)');
  });

  it('reads a bare bucket config (JSON) and a training config (YAML) with custom resolutions', async () => {
    const json = path.join(dir, 'bucket.json');
    writeFileSync(json, JSON.stringify({ '144p': { '1': [1.0, 10], '16': [1.0, 4] } }));
    const a = await cli(['bucket', 'stats', official, '--bucket-config', json]);
    expect(a.code, a.stderr).toBe(0);
    // Bare config: frame interval 1, so the 60-frame clips take T=16: floor(34 / 4) = 8; images floor(48 / 10) = 4.
    expect(a.stdout).toContain('frame interval 1');
    expect(a.stdout).toContain('steps per epoch: 12');

    const yaml = path.join(dir, 'train.yaml');
    writeFileSync(
      yaml,
      ['customResolutions:', '  px32:', '    pixels: 1024', '    ratios: { "0.67": [32, 48], "1.00": [32, 32] }', 'dataset:', '  frameInterval: 2', 'bucketConfig:', '  px32: { "1": [1.0, 5], "4": [1.0, 3] }', ''].join('\n'),
    );
    const b = await cli(['bucket', 'stats', tiny, '--bucket-config', yaml]);
    expect(b.code, b.stderr).toBe(0);
    // 8 frames > 4 * 2 is false and a clip never takes T=1 (the reference's rule), so only the images
    // (and not the two 16x16 ones) are in buckets: floor(10 / 5) = 2 batches.
    expect(b.stdout).toContain('frame interval 2');
    expect(b.stdout).toContain('18 rows, 10 in buckets (55.6%), 8 without a bucket');
    expect(b.stdout).toMatch(/px32\s+1\s+10\s+2/);
    expect(b.stdout).toContain('steps per epoch: 2');
    const c = await cli(['bucket', 'stats', tiny, '--bucket-config', yaml, '--frame-interval', '1']);
    expect(c.code, c.stderr).toBe(0);
    // With interval 1, 8 > 4: the clips take T=4 (batch 3): 2 more batches.
    expect(c.stdout).toMatch(/px32\s+4\s+0\.67\s+4x32x48\s+3\s+6\s+2/);
    expect(c.stdout).toContain('steps per epoch: 4');
  });

  it('is deterministic for a seed with keep probabilities below 1', async () => {
    const json = path.join(dir, 'half.json');
    writeFileSync(json, JSON.stringify({ '144p': { '1': [0.5, 4], '16': [0.5, 2] } }));
    const a = await cli(['bucket', 'stats', official, '--bucket-config', json, '--seed', '7']);
    const b = await cli(['bucket', 'stats', official, '--bucket-config', json, '--seed', '7']);
    expect(a.code, a.stderr).toBe(0);
    expect(b.stdout).toBe(a.stdout);
    const m = /84 rows, (\d+) in buckets/.exec(a.stdout);
    const kept = Number(m![1]);
    expect(kept).toBeGreaterThan(10);
    expect(kept).toBeLessThan(72);
  });

  it('draws the resolution x num_frames heatmap', async () => {
    const png = path.join(dir, 'heat.png');
    const r = await cli(['bucket', 'stats', official, '--png', png]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(png);
    const meta = await sharp(png).metadata();
    // stage2: 8 resolutions x frame keys 1, 16, 32, 64, 128.
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 90 + 5 * 96 + 30, 70 + 8 * 44 + 50]);
  });
});

describe('opensora bucket stats: bad input', () => {
  it('a missing CSV or config file ends with a one-line error and exit 2', async () => {
    const a = await cli(['bucket', 'stats', path.join(dir, 'nope.csv')]);
    expect(a.code).toBe(2);
    expectOneLineError(a.stderr);
    expect(a.stderr).toContain('nope.csv');
    const b = await cli(['bucket', 'stats', official, '--bucket-config', path.join(dir, 'nope.json')]);
    expect(b.code).toBe(2);
    expectOneLineError(b.stderr);
    expect(b.stderr).toContain('nope.json');
  });

  it('a CSV without frame counts says to run data info', async () => {
    const f = path.join(dir, 'nocols.csv');
    writeFileSync(f, 'path,text\na.mp4,x\n');
    const a = await cli(['bucket', 'stats', f]);
    expect(a.code).toBe(2);
    expectOneLineError(a.stderr);
    expect(a.stderr).toContain("missing required column 'num_frames'");
    const g = path.join(dir, 'empty-cell.csv');
    writeFileSync(g, 'path,num_frames,height,width\na.mp4,8,32,32\nb.mp4,,32,32\n');
    const b = await cli(['bucket', 'stats', g]);
    expect(b.code).toBe(2);
    expectOneLineError(b.stderr);
    expect(b.stderr).toContain("row 2 (b.mp4) has no num_frames; run 'opensora data info'");
  });

  it('a bad bucket config names the resolution at fault', async () => {
    const f = path.join(dir, 'bad.json');
    writeFileSync(f, JSON.stringify({ '999p': { '1': [1.0, 4] } }));
    const r = await cli(['bucket', 'stats', official, '--bucket-config', f]);
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr);
    expect(r.stderr).toContain('999p');
  });

  it('an unknown preset, flag or bad value ends with exit 2', async () => {
    const a = await cli(['bucket', 'stats', official, '--preset', 'nope']);
    expect(a.code).toBe(2);
    expectOneLineError(a.stderr);
    expect(a.stderr).toContain('tiny');
    const b = await cli(['bucket', 'stats', official, '--frame-interval', 'x']);
    expect(b.code).toBe(2);
    expectOneLineError(b.stderr);
    const c = await cli(['bucket', 'stats', official, '--num-replicas', '0']);
    expect(c.code).toBe(2);
    expectOneLineError(c.stderr);
    const d = await cli(['bucket', 'stats', official, '--bogus']);
    expect(d.code).toBe(2);
    expectOneLineError(d.stderr);
    const e = await cli(['bucket', 'stats']);
    expect(e.code).toBe(2);
    expectOneLineError(e.stderr);
  });
});
