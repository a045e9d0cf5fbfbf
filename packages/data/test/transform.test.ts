import { describe, expect, it } from 'vitest';
import { centerCropVideo, resizeCropPlan, resizeCropVideo, roundHalfEven, temporalCropIndices, type Frame } from '../src/index.js';

describe('temporal random crop (spec 4.2)', () => {
  it('matches the reference indices for T=16, fi=3 and T=32, fi=3', () => {
    expect(temporalCropIndices(200, 16, 3, { begin: 0 })).toEqual([0, 3, 6, 9, 12, 15, 18, 21, 25, 28, 31, 34, 37, 40, 43, 47]);
    const t32 = temporalCropIndices(500, 32, 3, { begin: 0 });
    expect(t32.slice(0, 9)).toEqual([0, 3, 6, 9, 12, 15, 18, 21, 24]);
    const i45 = t32.indexOf(45);
    expect(t32[i45 + 1]).toBe(49);
    expect(t32[31]).toBe(95);
  });

  it('draws begin in [0, total - size - 1] and shrinks the window for short clips', () => {
    // total 100, size 48 -> begin in [0, 51]
    expect(temporalCropIndices(100, 16, 3, { u: 0 })[0]).toBe(0);
    expect(temporalCropIndices(100, 16, 3, { u: 0.999999 })[0]).toBe(51);
    // exactly size frames: begin 0, window = whole clip
    expect(temporalCropIndices(48, 16, 3, { u: 0.7 })).toEqual(temporalCropIndices(48, 16, 3, { begin: 0 }));
    // fewer than size frames: stride compresses, spans the whole clip
    const short = temporalCropIndices(20, 16, 3, { u: 0.5 });
    expect(short[0]).toBe(0);
    expect(short[15]).toBe(19);
    expect(() => temporalCropIndices(15, 16, 3, { u: 0 })).toThrow(/fewer than the 16/);
    expect(temporalCropIndices(10, 1, 3, { begin: 6 })).toEqual([6]);
  });
});

describe('resize_crop (spec 4.3 test vectors)', () => {
  it('plans 720x1280 targets like the reference', () => {
    expect(resizeCropPlan(720, 1280, 240, 426, 'video')).toEqual({ rh: 240, rw: 427, top: 0, left: 0 });
    expect(resizeCropPlan(720, 1280, 768, 1344, 'video')).toEqual({ rh: 768, rw: 1365, top: 0, left: 10 });
    expect(resizeCropPlan(720, 1280, 133, 277, 'video')).toEqual({ rh: 156, rw: 277, top: 11, left: 0 });
    expect(resizeCropPlan(720, 1280, 133, 277, 'image')).toEqual({ rh: 156, rw: 277, top: 12, left: 0 });
  });

  it('rounds half to even like Python', () => {
    expect([0.5, 1.5, 2.5, -0.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, 0, 2, 3]);
  });

  const frame = (w: number, h: number, f: (x: number, y: number, c: number) => number): Frame => {
    const data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = f(x, y, c);
    return { data, width: w, height: h };
  };

  it('bilinear (align_corners=False) matches hand-computed torch values and normalises to [-1, 1]', () => {
    // 2x2 -> 4x4 upsample of a single channel pattern; torch gives rows [0, .25, .75, 1] * (b - a) + a
    const f = frame(2, 2, (x, y) => (x === 0 && y === 0 ? 0 : x === 1 && y === 0 ? 255 : x === 0 ? 0 : 255));
    const out = resizeCropVideo([f], 4, 4);
    const row = Array.from(out.slice(0, 4)).map((v) => (v + 1) / 2);
    expect(row[0]).toBeCloseTo(0, 6);
    expect(row[1]).toBeCloseTo(0.25, 6);
    expect(row[2]).toBeCloseTo(0.75, 6);
    expect(row[3]).toBeCloseTo(1, 6);
    // identity size: exact x/127.5 - 1, layout C,T,H,W
    const g = frame(3, 2, (x, y, c) => 10 * x + 50 * y + 100 * c);
    const id = resizeCropVideo([g, g], 2, 3);
    expect(id.length).toBe(3 * 2 * 2 * 3);
    expect(id[0]).toBeCloseTo(0 / 127.5 - 1, 6);
    expect(id[2 * 6 + 1]).toBeCloseTo((10 + 100) / 127.5 - 1, 6); // c=1, t=0, y=0, x=1
    expect(id[2 * 6 + 6 + 3 + 2]).toBeCloseTo((20 + 50 + 100) / 127.5 - 1, 6); // c=1, t=1, y=1, x=2
    for (const v of id) expect(Math.abs(v)).toBeLessThanOrEqual(1);
  });

  it('crops the centre after a cover resize (video offsets floor)', () => {
    // 4 wide x 2 high, target 2x2: resize to 2x4 (identity), crop columns 1..2
    const f = frame(4, 2, (x) => x * 60);
    const out = resizeCropVideo([f], 2, 2);
    expect(Array.from(out.slice(0, 2)).map((v) => Math.round((v + 1) * 127.5))).toEqual([60, 120]);
    const c = centerCropVideo([f], 2);
    expect(Array.from(c.slice(0, 2)).map((v) => Math.round((v + 1) * 127.5))).toEqual([60, 120]);
  });
});
