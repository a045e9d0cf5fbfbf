import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '@opensora/core';
import { FLOW_FRAME_INDICES, blockMatch, encodeMp4, flowScorer, laplacianVariance, runScorer, selectFrameIndices, sharpnessScorer, type Frame } from '../src/index.js';
import { tempDir } from './helpers.js';

const tmp = tempDir('osdata-score-');
afterAll(() => tmp.cleanup());

/** A smooth random texture (blocks of 4 px) that translates by (vx, vy) px per frame. */
function texture(w: number, h: number, n: number, vx: number, vy: number): Uint8Array[] {
  const rng = new Rng(9);
  const big = 4 * Math.max(w, h);
  const tex = new Uint8Array((big / 4) * (big / 4));
  for (let i = 0; i < tex.length; i++) tex[i] = 40 + rng.int(180);
  const frames: Uint8Array[] = [];
  for (let t = 0; t < n; t++) {
    const f = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const sx = x - vx * t + 2 * w;
        const sy = y - vy * t + 2 * h;
        const v = tex[Math.floor(sy / 4) * (big / 4) + Math.floor(sx / 4)]!;
        f.set([v, 255 - v, v >> 1], (y * w + x) * 3);
      }
    frames.push(f);
  }
  return frames;
}

describe('built-in scorers', () => {
  it('selects the reference frame positions and clamps past the end', () => {
    expect(selectFrameIndices({ indices: FLOW_FRAME_INDICES }, 100)).toEqual([0, 10, 20, 30]);
    expect(selectFrameIndices({ indices: FLOW_FRAME_INDICES }, 25)).toEqual([0, 10, 20, 24]);
    expect(selectFrameIndices({ points: [0.1, 0.5, 0.9] }, 30)).toEqual([3, 15, 27]);
  });

  it('block matching recovers a known translation', () => {
    const W = 160;
    const H = 128;
    const [a, b] = texture(W, H, 2, 0, 0);
    const plane = (f: Uint8Array) => ({ data: Float32Array.from({ length: W * H }, (_, i) => f[i * 3]!), width: W, height: H });
    const fr = texture(W, H, 11, 2, -1);
    const m = blockMatch(plane(fr[0]!), plane(fr[10]!));
    // every block whose content stays in the frame moves by exactly (20, -10)
    let ok = 0;
    let interior = 0;
    for (let by = 0; by < m.rows; by++)
      for (let bx = 0; bx < m.cols; bx++) {
        if (bx * 8 + 28 > W || by * 8 - 10 < 0) continue;
        interior++;
        if (m.dx[by * m.cols + bx] === 20 && m.dy[by * m.cols + bx] === -10) ok++;
      }
    expect(interior).toBeGreaterThan(200);
    expect(ok / interior).toBeGreaterThan(0.95);
    const still = blockMatch(plane(a!), plane(b!));
    expect(still.dx.every((v) => v === 0) && still.dy.every((v) => v === 0)).toBe(true);
  });

  it('flow = mean |dx|,|dy| in pixels at the working size over the reference pairs; static clips score ~0', async () => {
    const moving = path.join(tmp.dir, 'moving.mp4');
    const still = path.join(tmp.dir, 'still.mp4');
    await encodeMp4(moving, texture(112, 64, 32, 1, 0), { width: 112, height: 64, fps: 10 });
    await encodeMp4(still, texture(112, 64, 32, 0, 0), { width: 112, height: 64, fps: 10 });
    const res = await runScorer(
      [
        { path: 'moving.mp4', num_frames: 32, fps: 10, width: 112, height: 64 },
        { path: 'still.mp4', num_frames: 32, fps: 10, width: 112, height: 64 },
      ],
      flowScorer({ size: [64, 112] }),
      { root: tmp.dir },
    );
    expect(res.errors).toEqual([]);
    // 10 px horizontal per pair: mean over components is 5 for blocks that match; borders pull it down a bit
    expect(res.rows[0]!.flow!).toBeGreaterThan(4);
    expect(res.rows[0]!.flow!).toBeLessThanOrEqual(5.5);
    expect(res.rows[1]!.flow!).toBeLessThan(0.2);
    const diff = await runScorer(res.rows, flowScorer({ size: [64, 112], method: 'diff', column: 'motion' }), { root: tmp.dir });
    expect(diff.rows[0]!.motion as number).toBeGreaterThan(10 * (diff.rows[1]!.motion as number) + 1);
  });

  it('sharpness is the variance of the Laplacian (known values)', () => {
    const flat: Frame = { data: new Uint8Array(8 * 8 * 3).fill(100), width: 8, height: 8 };
    expect(laplacianVariance(flat)).toBe(0);
    // one white pixel in a 3x3 black frame: laplacian values -4*255 at centre, 255 at 4 neighbours, 0 at corners
    const dot: Frame = { data: new Uint8Array(27), width: 3, height: 3 };
    dot.data.set([255, 255, 255], 4 * 3);
    const vals = [0, 255, 0, 255, -1020, 255, 0, 255, 0];
    const mean = vals.reduce((a, b) => a + b, 0) / 9;
    const variance = vals.reduce((a, b) => a + (b - mean) ** 2, 0) / 9;
    expect(laplacianVariance(dot)).toBeCloseTo(variance, 3);
    expect(sharpnessScorer().frames).toEqual({ points: [0.5] });
  });
});
