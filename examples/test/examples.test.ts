/**
 * Runs every example script in a reduced form (tiny sizes, 1-3 steps), so that none can rot, and
 * checks what each one claims to show.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@opensora/core';
import { DEFAULT_MASK_RATIOS } from '@opensora/mask';
import { STDiT2 } from '@opensora/stdit';
import { BUCKET_CONFIG, main as bucketMain, makeRows } from '../src/bucket-in-your-trainer.js';
import { main as maskMain } from '../src/mask-strategies.js';
import { main as pipelineMain } from '../src/tiny-pretrain-to-stage3.js';
import { main as inferenceMain } from '../src/inference-flows.js';
import { main as officialMain } from '../src/load-official-weights.js';
import { runDemo } from '../src/demo.js';
import { main as probeMain } from '../src/motion-probe.js';

const root = mkdtempSync(path.join(tmpdir(), 'examples-test-'));
const quiet = () => {
  const lines: string[] = [];
  return { lines, log: (s: string) => void lines.push(s) };
};
beforeAll(async () => {
  await initBackend();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('bucket-in-your-trainer', () => {
  it('batches share a bucket shape, a mid-epoch restart resumes exactly, ranks are disjoint', async () => {
    const q = quiet();
    const workDir = path.join(root, 'bucket');
    const r = await bucketMain({ rows: 600, epochs: 2, workDir, log: q.log });
    const rows = makeRows(600);
    expect(r.stats.numRows).toBe(600);
    expect(r.stats.assigned + r.stats.unassigned).toBe(600);
    expect(r.stats.buckets.reduce((a, b) => a + b.samples, 0)).toBe(r.stats.assigned);
    expect(r.stepsPerEpoch).toBeGreaterThan(10);
    expect(q.lines.join('\n')).toContain('By resolution and frames:');

    // Every batch: indices of rows that fit its bucket (more than T * frameInterval frames), full batch size.
    const batchSize = new Map(r.stats.buckets.map((b) => [b.thw.join('x'), b.batchSize]));
    for (const k of r.uninterrupted) {
      const [, thw, list] = k.split(':') as [string, string, string];
      const T = Number(thw.split('x')[0]);
      const idx = list.split(',').map(Number);
      if (batchSize.has(thw)) expect(idx.length).toBe(batchSize.get(thw));
      for (const i of idx) expect(T === 1 || Number(rows[i]!.num_frames) > T * 2).toBe(true);
      expect(new Set(idx).size).toBe(idx.length);
    }
    expect(r.uninterrupted.filter((k) => k.startsWith('0/')).length).toBe(r.stepsPerEpoch);
    expect(new Set(r.uninterrupted.map((k) => k.split('/')[0])).size).toBe(2);

    // Resume: the stopped-and-restarted run saw exactly the batches of the uninterrupted one.
    expect(r.crashedAt.step).toBe(Math.floor(r.stepsPerEpoch / 2));
    expect(r.resumed).toEqual(r.uninterrupted);
    const state = JSON.parse(readFileSync(path.join(workDir, 'sampler.json'), 'utf8')) as { epoch: number; step: number };
    expect([state.epoch, state.step]).toEqual([0, r.crashedAt.step]);

    // Two ranks: no row shared, same number of rows per step.
    const [a, b] = r.ranks;
    expect(a.length).toBeGreaterThan(0);
    expect(a.filter((i) => new Set(b).has(i))).toEqual([]);
    expect(Object.keys(BUCKET_CONFIG)).toEqual(['360p', '240p', '144p']);
  });
});

describe('mask-strategies', () => {
  it('parses, plans every recipe and loop, and draws training masks at the configured rates', async () => {
    const q = quiet();
    const r = await maskMain({ frames: 8, draws: 4000, log: q.log });
    expect(r.parsed).toEqual([
      { loopId: 0, refId: 0, refStart: 0, targetStart: 0, length: 1, editRatio: 0 },
      { loopId: 0, refId: 1, refStart: -4, targetStart: -4, length: 4, editRatio: 0.5 },
    ]);
    expect(r.errorCode).toBe('E_MASK_STRATEGY');
    const plan = (name: string) => r.recipes.find((x) => x.name.startsWith(name))!;
    expect(plan('animate an image (first').strategy).toBe('0');
    expect(plan('animate an image (first').plan.mask).toEqual([0, 1, 1, 1, 1, 1, 1, 1]);
    expect(plan('animate an image (last').plan.mask).toEqual([1, 1, 1, 1, 1, 1, 1, 0]);
    const ext = plan('extend a 8-frame video forward');
    expect(ext.strategy).toBe('0,0,-4,0,4');
    expect(ext.plan.placements.slice(0, 4)).toEqual([4, 5, 6, 7].map((frame) => ({ ref: 0, frame })));
    expect(ext.plan.mask).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    expect(plan('extend a video backward').plan.placements.slice(4)).toEqual([0, 1, 2, 3].map((frame) => ({ ref: 0, frame })));
    const edit = plan('edit a video');
    expect(edit.strategy).toBe('0,0,0,0,8,0.4');
    expect(edit.plan.mask).toEqual(new Array(8).fill(Math.fround(0.4)));
    expect(r.editEntryStep).toBe(8);
    const connect = plan('connect two images').plan;
    expect(connect.placements[0]).toEqual({ ref: 0, frame: 0 });
    expect(connect.placements[7]).toEqual({ ref: 1, frame: 0 });
    expect(connect.mask).toEqual([0, 1, 1, 1, 1, 1, 1, 0]);
    expect(plan('connect two clips').plan.placements).toEqual([
      { ref: 0, frame: 6 },
      { ref: 0, frame: 7 },
      null,
      null,
      null,
      null,
      { ref: 1, frame: 0 },
      { ref: 1, frame: 1 },
    ]);

    // Long video: 4 loops of 8 frames chained on 4 frames each.
    expect(r.long.totalFrames).toBe(4 * (8 - 4) + 4);
    expect(r.long.loops.map((s) => [s.outputStart, s.outputEnd])).toEqual([
      [0, 8],
      [8, 12],
      [12, 16],
      [16, 20],
    ]);
    expect(r.long.loops[1]!.placements!.slice(0, 4)).toEqual([4, 5, 6, 7].map((frame) => ({ ref: 1, frame })));
    expect(r.long.loops[3]!.strategy).toBe('0;1,1,-4,0,4;2,2,-4,0,4;3,3,-4,0,4');

    expect(r.prompt).toEqual({
      text: '|0|a red ball rolls.|2|the ball stops.',
      references: ['start.png', 'end.png'],
      strategy: '0;0,1,0,-1,1',
      loopPrompts: ['a red ball rolls.', 'a red ball rolls.', 'the ball stops.', 'the ball stops.'],
    });
    for (const [type, p] of Object.entries(DEFAULT_MASK_RATIOS)) expect(Math.abs(r.frequencies[type]! - p)).toBeLessThan(0.025);
    expect(r.resume.restored).toEqual(r.resume.original);
  });
});

let finalCheckpoint: string | undefined;

describe('tiny-pretrain-to-stage3', () => {
  it('trains image -> stage1 -> stage2 -> stage3; a restart skips finished stages and resumes the stopped one', async () => {
    const q = quiet();
    const r = await pipelineMain({ workDir: path.join(root, 'pipeline'), steps: 2, videos: 6, images: 8, log: q.log });
    expect(r.first.completed).toBe(false);
    expect(r.first.stages.map((s) => [s.name, s.status, s.start, s.globalStep])).toEqual([
      ['image', 'done', 'fresh', 2],
      ['stage1', 'done', 'previous-stage', 2],
      ['stage2', 'interrupted', 'previous-stage', 1],
    ]);
    expect(r.second.completed).toBe(true);
    expect(r.second.stages.map((s) => [s.name, s.status, s.start, s.globalStep])).toEqual([
      ['image', 'skipped', 'already-done', 2],
      ['stage1', 'skipped', 'already-done', 2],
      ['stage2', 'done', 'resumed', 2],
      ['stage3', 'done', 'previous-stage', 2],
    ]);
    expect(r.second.stages[2]!.result!.startGlobalStep).toBe(1);
    for (const s of [...r.first.stages, ...r.second.stages]) for (const l of s.result?.losses ?? []) expect(Number.isFinite(l.loss)).toBe(true);
    expect(path.basename(r.finalCheckpoint)).toBe('epoch0-global_step2');
    expect(existsSync(path.join(r.finalCheckpoint, 'model', 'model.safetensors'))).toBe(true);
    finalCheckpoint = r.finalCheckpoint;
  });
});

describe('inference-flows', () => {
  it('runs every flow with random weights; conditioned frames carry their sources', async () => {
    const q = quiet();
    const r = await inferenceMain({ outDir: path.join(root, 'samples'), steps: 2, log: q.log });
    const f = r.flows;
    expect(r.latentFrames).toBe(8);
    expect([f.t2i.sample.frames, f.t2i.sample.path.endsWith('.png')]).toEqual([1, true]);
    for (const k of ['t2v', 'i2v', 'extend', 'edit', 'connect'] as const) {
      expect([f[k].sample.frames, f[k].sample.height, f[k].sample.width]).toEqual([8, 32, 32]);
      expect(f[k].sample.path.endsWith('.mp4')).toBe(true);
    }
    expect(f.loop.sample.frames).toBe(3 * (8 - 4) + 4);
    for (const x of Object.values(f)) {
      expect(existsSync(x.sample.path)).toBe(true);
      if (x.sample.frames > 1) expect(existsSync(x.sample.contactSheet!)).toBe(true);
    }
    // Frozen frames equal the frames they were given; unrelated samples are far apart.
    expect(r.unrelatedError).toBeGreaterThan(20);
    for (const k of ['i2v', 'extend', 'connect'] as const) expect(f[k].conditionError!).toBeLessThan(1);
    expect(f.edit.conditionError!).toBeGreaterThan(1); // edit ratio 0.5: regenerated for half the steps
  });

  it('runs on the checkpoint of the tiny pipeline (loadModelStack)', async () => {
    expect(finalCheckpoint).toBeDefined();
    const r = await inferenceMain({ model: finalCheckpoint!, outDir: path.join(root, 'samples-trained'), steps: 2, exactConditions: true, log: () => {} });
    expect(r.flows.loop.sample.frames).toBe(16);
    for (const k of ['i2v', 'extend', 'connect'] as const) expect(r.flows[k].conditionError!).toBeLessThan(1);
  });
});

describe('motion-probe', () => {
  it('probes the checkpoint of the tiny pipeline and prints the table and the gaps', async () => {
    expect(finalCheckpoint).toBeDefined();
    const q = quiet();
    const r = await probeMain({ model: finalCheckpoint!, size: 16, clips: 2, timesteps: [700, 300], log: q.log });
    expect(r.rows.map((x) => x.t)).toEqual([700, 300]);
    for (const row of r.rows) for (const v of Object.values(row.mse)) expect(Number.isFinite(v) && v > 0).toBe(true);
    expect(q.lines[0]).toMatch(/^motion probe of .* at 16x16 \(epsilon MSE, 2 clips, shared noise\)/);
    expect(q.lines[0]).toMatch(/caption gap [+-]\d+\.\d% .*\n.*order gap/s);
  });
});

describe('load-official-weights', () => {
  it('writes the official layouts, loads them by path, and counts the official parameters', async () => {
    const q = quiet();
    const r = await officialMain({ workDir: path.join(root, 'official'), log: q.log });
    expect(r.counts.stdit2.total).toBe(768_271_300);
    expect(r.counts.sdVae).toBe(83_653_863);
    expect(r.counts.t5xxl).toBe(4_762_310_656);
    for (const [dir, files] of [
      [r.folders.model, ['model.safetensors', 'config.json']],
      [r.folders.vae, ['diffusion_pytorch_model.safetensors', 'config.json']],
      [r.folders.textEncoder, ['model.safetensors', 'config.json', 'tokenizer.json']],
    ] as const) {
      for (const file of files) expect(existsSync(path.join(dir, file))).toBe(true);
    }
    // The official config.json is snake_case.
    const cfg = JSON.parse(readFileSync(path.join(r.folders.model, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg.hidden_size).toBe(48);
    expect(r.loaded.modelConfig).toMatchObject({ depth: 1, hiddenSize: 48, qkNorm: true, modelMaxLength: 200, captionChannels: 16, inChannels: 4 });
    expect([r.loaded.vaeLatentChannels, r.loaded.vaeSpatialCompression]).toEqual([4, 8]);
    expect([r.loaded.textChannels, r.loaded.textMaxLength]).toEqual([16, 200]);
    expect(r.loaded.embeddingShape).toEqual([1, 1, 200, 16]);
    expect(r.stack.modelParameters).toBe(r.loaded.modelParameters);
    expect(r.sample?.frames).toBe(1);
    expect(existsSync(r.sample!.path)).toBe(true);

    // The loaded weights are the written ones.
    const written = STDiT2.preset('STDiT2-XL/2', { depth: 1, hiddenSize: 48, numHeads: 2, captionChannels: 16, inputSqSize: 32 }, { seed: 3 });
    const loaded = STDiT2.fromPretrained(r.folders.model);
    try {
      const a = written.stateDict();
      const b = loaded.stateDict();
      expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
      for (const [k, t] of a) expect(Array.from(b.get(k)!.dataSync()), k).toEqual(Array.from(t.dataSync()));
    } finally {
      written.dispose();
      loaded.dispose();
    }
  });
});

describe('demo (quick mode)', () => {
  it('runs data, the four stages, every flow, the gallery and the learning check', async () => {
    const q = quiet();
    const work = path.join(root, 'demo');
    const r = await runDemo({ quick: true, workDir: work, samplesDir: path.join(work, 'samples'), log: q.log });
    expect(r.samples.map((x) => path.basename(x.path))).toEqual(['t2i_0.png', 't2v_square_0.mp4', 't2v_wide_0.mp4', 'i2v_0.mp4', 'extend_0.mp4', 'connect_0.mp4']);
    for (const x of r.samples) expect(existsSync(x.path)).toBe(true);
    expect(readFileSync(r.gallery, 'utf8')).toContain('a red square on a blue background');
    for (const row of ['object colour', 'background', 'direction']) expect(r.report).toContain(row);
    expect(r.probe.trained.rows.map((x) => x.t)).toEqual([500]);
    expect(q.lines.some((l) => l.startsWith('motion probe, untrained weights: caption gap'))).toBe(true);
    expect(r.trained.background.total).toBe(2);
    // the synthetic clips are 9 frames at 8 fps, and every stage trained
    expect(q.lines.some((l) => l.includes("'--lengths', '9'") || l.includes('--lengths 9'))).toBe(true);
    for (const stage of ['01-image', '02-stage1', '03-stage2', '04-stage3']) expect(existsSync(path.join(work, 'train', stage, 'log.jsonl'))).toBe(true);
  });
});
