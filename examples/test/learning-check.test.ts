import { describe, expect, it } from 'vitest';
import { Rng } from '@opensora/core';
import {
  SYNTH_COLORS,
  SYNTH_COLOR_NAMES,
  SYNTH_DIRECTION_NAMES,
  SYNTH_SHAPES,
  renderSynthFrame,
  synthCaption,
  type SynthColor,
  type SynthDirection,
  type SynthShape,
} from '@opensora/data';
import { analyzeFrames, checkSample, formatLearningReport, learningReport, nearestSynthColor, type RgbVideo, type SampleCheck } from '../src/learning-check.js';

interface Scene {
  shape: SynthShape;
  color: SynthColor;
  background: SynthColor;
  direction: SynthDirection | null;
}

function render(scene: Scene, frames: number, height: number, width: number, offset = 0): RgbVideo {
  const frame = height * width * 3;
  const data = new Uint8Array(frames * frame);
  for (let t = 0; t < frames; t++) {
    renderSynthFrame(data.subarray(t * frame, (t + 1) * frame), width, height, scene, frames > 1 ? t / (frames - 1) : 0.5, offset);
  }
  return { data, frames, height, width };
}

function concat(a: RgbVideo, b: RgbVideo): RgbVideo {
  const data = new Uint8Array(a.data.length + b.data.length);
  data.set(a.data);
  data.set(b.data, a.data.length);
  return { data, frames: a.frames + b.frames, height: a.height, width: a.width };
}

/** Adds seeded Gaussian noise (clamped to 0..255). */
function noisy(v: RgbVideo, sigma: number, rng: Rng): RgbVideo {
  const data = new Uint8Array(v.data.length);
  for (let i = 0; i < data.length; i++) data[i] = Math.max(0, Math.min(255, Math.round(v.data[i]! + rng.normal(0, sigma))));
  return { ...v, data };
}

/** Separable box blur of the given radius per frame (edges clamped). */
function blurred(v: RgbVideo, radius: number): RgbVideo {
  const { frames: T, height: H, width: W } = v;
  let src = Float32Array.from(v.data);
  for (const horizontal of [true, false]) {
    const dst = new Float32Array(src.length);
    for (let t = 0; t < T; t++) {
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          for (let c = 0; c < 3; c++) {
            let s = 0;
            for (let k = -radius; k <= radius; k++) {
              const xx = horizontal ? Math.min(W - 1, Math.max(0, x + k)) : x;
              const yy = horizontal ? y : Math.min(H - 1, Math.max(0, y + k));
              s += src[((t * H + yy) * W + xx) * 3 + c]!;
            }
            dst[((t * H + y) * W + x) * 3 + c] = s / (2 * radius + 1);
          }
        }
      }
    }
    src = dst;
  }
  return { ...v, data: Uint8Array.from(src, (x) => Math.round(x)) };
}

const SIZES: Array<[number, number]> = [
  [32, 32],
  [32, 48],
  [48, 32],
  [36, 64],
  [64, 64],
];

function randomScene(rng: Rng, moving: boolean): Scene {
  const background = SYNTH_COLOR_NAMES[rng.int(SYNTH_COLOR_NAMES.length)]!;
  const others = SYNTH_COLOR_NAMES.filter((c) => c !== background);
  return {
    background,
    color: others[rng.int(others.length)]!,
    shape: SYNTH_SHAPES[rng.int(SYNTH_SHAPES.length)]!,
    direction: moving ? SYNTH_DIRECTION_NAMES[rng.int(SYNTH_DIRECTION_NAMES.length)]! : null,
  };
}

describe('nearestSynthColor', () => {
  it('maps every palette colour to itself and far colours to null', () => {
    for (const name of SYNTH_COLOR_NAMES) expect(nearestSynthColor(SYNTH_COLORS[name])).toEqual({ name, distance: 0 });
    expect(nearestSynthColor([220, 30, 30])).toEqual({ name: 'red', distance: 0 });
    expect(nearestSynthColor([200, 50, 40]).name).toBe('red');
    expect(nearestSynthColor([128, 128, 128]).name).toBeNull();
    expect(nearestSynthColor([128, 128, 128], 1000).name).not.toBeNull();
  });
});

describe('analyzeFrames on clean renders', () => {
  it('recovers object and background for every colour pair and shape (32x32 still)', () => {
    for (const background of SYNTH_COLOR_NAMES) {
      for (const color of SYNTH_COLOR_NAMES) {
        if (color === background) continue;
        for (const shape of SYNTH_SHAPES) {
          const a = analyzeFrames(render({ shape, color, background, direction: null }, 1, 32, 32));
          expect(a.background?.name, `${color} ${shape} on ${background}`).toBe(background);
          expect(a.object?.name, `${color} ${shape} on ${background}`).toBe(color);
          expect(a.direction).toBeNull();
          expect(a.motion).toBeNull();
          expect(a.objectFraction).toBeGreaterThan(0.05);
          expect(a.objectFraction).toBeLessThan(0.2);
        }
      }
    }
  });

  it('gives exact palette rgb for flat colours', () => {
    const a = analyzeFrames(render({ shape: 'square', color: 'orange', background: 'purple', direction: null }, 1, 48, 32));
    expect(a.background?.rgb).toEqual([140, 40, 190]);
    expect(a.background?.distance).toBe(0);
    expect(a.object?.rgb).toEqual([245, 130, 20]);
  });

  it('recovers every direction at every size, 8 and 16 frames', () => {
    const rng = new Rng(1);
    for (const [h, w] of SIZES) {
      for (const frames of [8, 16]) {
        for (const direction of SYNTH_DIRECTION_NAMES) {
          const scene = { ...randomScene(rng, true), direction };
          const a = analyzeFrames(render(scene, frames, h, w, rng.uniform(-1, 1)));
          const what = `${synthCaption(scene)} ${h}x${w}x${frames}`;
          expect(a.direction, what).toBe(direction);
          expect(a.background?.name, what).toBe(scene.background);
          expect(a.object?.name, what).toBe(scene.color);
          // The synthetic object travels half the frame along its axis.
          expect(a.motion!.magnitude, what).toBeGreaterThan(0.4);
          expect(a.motion!.magnitude, what).toBeLessThan(0.6);
          expect(a.motion!.validFrames).toBe(frames);
        }
      }
    }
  });

  it('reports no direction for a still object in a video', () => {
    const still = render({ shape: 'circle', color: 'yellow', background: 'black', direction: null }, 12, 32, 32);
    const a = analyzeFrames(still);
    expect(a.object?.name).toBe('yellow');
    expect(a.direction).toBeNull();
    expect(a.motion!.magnitude).toBeLessThan(0.02);
  });
});

describe('analyzeFrames on noisy, blurry renders', () => {
  const cases: Array<{ sigma: number; blur: number }> = [
    { sigma: 12, blur: 0 },
    { sigma: 25, blur: 0 },
    { sigma: 0, blur: 2 },
    { sigma: 20, blur: 1 },
  ];
  for (const { sigma, blur } of cases) {
    it(`recovers colours and directions with noise sigma ${sigma}, blur radius ${blur}`, () => {
      const rng = new Rng(100 + sigma * 10 + blur);
      const failures: string[] = [];
      const n = 24;
      for (let i = 0; i < n; i++) {
        const [h, w] = SIZES[i % SIZES.length]!;
        const frames = i % 3 === 0 ? 1 : i % 3 === 1 ? 8 : 16;
        const scene = randomScene(rng, frames > 1);
        let v = render(scene, frames, h, w, rng.uniform(-1, 1));
        if (blur) v = blurred(v, blur);
        if (sigma) v = noisy(v, sigma, rng);
        const c = checkSample(synthCaption(scene), v);
        const what = `${synthCaption(scene)} ${h}x${w}x${frames}`;
        if (!c.objectColor) failures.push(`${what}: object ${c.analysis[0]!.object?.name}`);
        if (!c.background) failures.push(`${what}: background ${c.analysis[0]!.background?.name}`);
        if (frames > 1 && !c.direction) failures.push(`${what}: direction ${c.analysis[0]!.direction}`);
        if (frames === 1) expect(c.direction).toBeNull();
      }
      expect(failures).toEqual([]);
    });
  }
});

describe('garbage input', () => {
  it('pure noise videos never throw and match about as often as chance', () => {
    const rng = new Rng(7);
    const results: SampleCheck[] = [];
    for (let i = 0; i < 24; i++) {
      const [h, w] = SIZES[i % SIZES.length]!;
      const frames = i % 2 ? 8 : 1;
      const data = new Uint8Array(frames * h * w * 3);
      for (let k = 0; k < data.length; k++) data[k] = rng.int(256);
      const scene = randomScene(rng, frames > 1);
      results.push(checkSample(synthCaption(scene), { data, frames, height: h, width: w }));
    }
    const r = learningReport(results);
    expect(r.objectColor.total).toBe(24);
    expect(r.objectColor.rate!).toBeLessThanOrEqual(0.25);
    expect(r.background.rate!).toBeLessThanOrEqual(0.25);
    expect(r.direction.total).toBe(12);
    expect(r.direction.rate!).toBeLessThanOrEqual(0.5);
    // Uniform noise has no dominant palette colour at the border.
    for (const c of results) expect(c.analysis[0]!.background?.name ?? null).toBeNull();
  });

  it('returns nulls for invalid shapes and buffers', () => {
    const bad: RgbVideo[] = [
      { data: new Uint8Array(0), frames: 0, height: 0, width: 0 },
      { data: new Uint8Array(10), frames: 1, height: 32, width: 32 },
      { data: new Uint8Array(12), frames: 1.5, height: 2, width: 2 },
      { data: new Uint8Array(12), frames: -1, height: 2, width: 2 },
      { data: null as unknown as Uint8Array, frames: 1, height: 2, width: 2 },
      null as unknown as RgbVideo,
    ];
    for (const v of bad) {
      const a = analyzeFrames(v);
      expect(a.background).toBeNull();
      expect(a.object).toBeNull();
      expect(a.direction).toBeNull();
      const c = checkSample('a red circle moving left on a blue background', v);
      expect(c.objectColor).toBe(false);
      expect(c.background).toBe(false);
    }
  });

  it('a flat frame has a background and no object; a 1x1 frame works', () => {
    const flat = render({ shape: 'circle', color: 'red', background: 'cyan', direction: null }, 4, 8, 8);
    flat.data.fill(0);
    for (let i = 0; i < flat.data.length; i += 3) flat.data.set([30, 200, 215], i);
    const a = analyzeFrames(flat);
    expect(a.background?.name).toBe('cyan');
    expect(a.object).toBeNull();
    expect(a.objectFraction).toBe(0);
    expect(a.direction).toBeNull();
    const tiny = analyzeFrames({ data: new Uint8Array([245, 245, 245]), frames: 1, height: 1, width: 1 });
    expect(tiny.background?.name).toBe('white');
  });
});

describe('checkSample', () => {
  const scene: Scene = { shape: 'triangle', color: 'red', background: 'blue', direction: 'left' };
  const video = render(scene, 12, 32, 48, 0.3);

  it('matches the prompt it was rendered from', () => {
    const c = checkSample('a red triangle moving left on a blue background', video);
    expect(c.expected).toEqual([{ color: 'red', shape: 'triangle', direction: 'left', background: 'blue' }]);
    expect([c.objectColor, c.background, c.direction]).toEqual([true, true, true]);
  });

  it('rejects the wrong colour, background and direction', () => {
    const c = checkSample('a green triangle moving right on a white background', video);
    expect([c.objectColor, c.background, c.direction]).toEqual([false, false, false]);
  });

  it('direction does not apply to image prompts or single frames', () => {
    expect(checkSample('a red triangle on a blue background', video).direction).toBeNull();
    const still = render({ ...scene, direction: null }, 1, 32, 32);
    const c = checkSample('a red triangle moving left on a blue background', still);
    expect(c.direction).toBeNull();
    expect(c.objectColor).toBe(true);
  });

  it('unparseable prompts give null verdicts', () => {
    const c = checkSample('a photo of a cat', video);
    expect(c.expected).toBeNull();
    expect([c.objectColor, c.background, c.direction]).toEqual([null, null, null]);
    expect(c.analysis[0]!.object?.name).toBe('red');
  });

  it('splits multi-scene prompts into segments', () => {
    const second: Scene = { shape: 'circle', color: 'yellow', background: 'green', direction: 'down' };
    const both = concat(render(scene, 8, 32, 32), render(second, 8, 32, 32));
    const prompt = `${synthCaption(scene)}, then ${synthCaption(second)}`;
    const c = checkSample(prompt, both);
    expect(c.analysis).toHaveLength(2);
    expect([c.objectColor, c.background, c.direction]).toEqual([true, true, true]);
    const swapped = checkSample(`${synthCaption(second)}, then ${synthCaption(scene)}`, both);
    expect([swapped.objectColor, swapped.background, swapped.direction]).toEqual([false, false, false]);
  });
});

describe('learningReport / formatLearningReport', () => {
  const mk = (objectColor: boolean | null, background: boolean | null, direction: boolean | null): SampleCheck => ({
    prompt: '',
    expected: null,
    analysis: [],
    objectColor,
    background,
    direction,
  });

  it('computes rates over the samples where each check applies', () => {
    const r = learningReport([mk(true, true, true), mk(true, false, null), mk(false, false, false), mk(null, null, null)]);
    expect(r.samples).toBe(4);
    expect(r.objectColor).toEqual({ matches: 2, total: 3, rate: 2 / 3 });
    expect(r.background).toEqual({ matches: 1, total: 3, rate: 1 / 3 });
    expect(r.direction).toEqual({ matches: 1, total: 2, rate: 0.5 });
    expect(r.chance).toEqual({ objectColor: 0.1, background: 0.1, direction: 0.25 });
    expect(learningReport([]).objectColor).toEqual({ matches: 0, total: 0, rate: null });
  });

  it('formats a table with the margin in percentage points', () => {
    const trained = learningReport([mk(true, true, true), mk(true, true, false), mk(true, false, true), mk(false, true, true)]);
    const untrained = learningReport([mk(false, false, false), mk(true, false, false), mk(false, false, true), mk(false, false, false)]);
    const s = formatLearningReport(trained, untrained);
    const lines = s.split('\n');
    expect(lines[0]).toContain('LEARNING CHECK');
    expect(lines[0]).toContain('4 trained vs 4 untrained');
    expect(lines).toHaveLength(6);
    expect(lines[3]).toMatch(/^object colour\s+3\/4 75\.0%\s+1\/4 25\.0%\s+10\.0%\s+\+50\.0 pts$/);
    expect(lines[4]).toMatch(/^background\s+3\/4 75\.0%\s+0\/4 0\.0%\s+10\.0%\s+\+75\.0 pts$/);
    expect(lines[5]).toMatch(/^direction\s+3\/4 75\.0%\s+1\/4 25\.0%\s+25\.0%\s+\+50\.0 pts$/);
    const none = formatLearningReport(learningReport([]), untrained);
    expect(none).toContain('n/a');
  });
});
