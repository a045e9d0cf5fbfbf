import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, createLogger } from '@opensora/core';
import { runPipeline, resolvePipelineConfig, loadCheckpoint, disposeCheckpoint, readJsonl, PIPELINE_PRESETS, type PipelineConfigInput } from '../src/index.js';
import { FAST, syntheticDataset, tmpDir } from './helpers.js';

let csv: string;
const dirs: string[] = [];
const quiet = createLogger({ name: 'pipe', level: 'error' });
beforeAll(async () => {
  await initBackend('wasm');
  csv = await syntheticDataset();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tinyPipeline(outputs: string): PipelineConfigInput {
  const p = PIPELINE_PRESETS.tiny!();
  return { ...p, outputs, data: csv, stages: p.stages.map((s) => ({ ...s, maxSteps: 3, overrides: ['logEvery=1', ...FAST] })) };
}

describe('multi-stage pipeline', () => {
  it('presets: the report chain image -> stage1 -> stage2 -> stage3', () => {
    const off = resolvePipelineConfig('official');
    expect(off.stages.map((s) => [s.name, s.preset, s.maxSteps])).toEqual([
      ['image', 'image', 6000],
      ['stage1', 'stage1', 81000],
      ['stage2', 'stage2', 22000],
      ['stage3', 'stage3', 4000],
    ]);
    expect(off.stages.every((s) => s.init === 'weights+optimizer')).toBe(true);
    expect(() => resolvePipelineConfig({ stages: [{ name: 'a', maxSteps: 1 }] })).toThrow(/exactly one of preset or config/);
    expect(() => resolvePipelineConfig({ stages: [{ name: 'a b', preset: 'tiny', maxSteps: 1 }] })).toThrow(/stage names/);
  });

  it('runs end to end, each stage from the previous one; a restart skips finished stages and resumes the interrupted one', async () => {
    const o = tmpDir('pipeline');
    dirs.push(o);
    const cfg = tinyPipeline(o);
    // first run: interrupted during the third stage
    const ac = new AbortController();
    const stagesSeen: string[] = [];
    const current = () => cfg.stages[stagesSeen.length]!.name;
    const r1 = await runPipeline(cfg, {
      signal: ac.signal,
      progress: 'silent',
      handleSignals: false,
      logger: quiet,
      onStep: (s) => {
        if (s.globalStep === 2 && current() === 'stage2') ac.abort();
      },
      onStage: (s) => stagesSeen.push(s.name),
    });
    expect(r1.completed).toBe(false);
    expect(r1.stages.map((s) => [s.name, s.status, s.start, s.globalStep])).toEqual([
      ['image', 'done', 'fresh', 3],
      ['stage1', 'done', 'previous-stage', 3],
      ['stage2', 'interrupted', 'previous-stage', 2],
    ]);
    // stage 1 started from the image stage's final weights + optimizer, counters reset
    const s1 = await loadCheckpoint(r1.stages[1]!.finalCheckpoint!);
    expect(s1.runningStates.global_step).toBe(3);
    expect(s1.optimizer!.state.step).toBe(6);
    disposeCheckpoint(s1);
    const stage1Log = readFileSync(path.join(r1.stages[1]!.dir, 'log.jsonl'), 'utf8');

    // second run: image and stage1 are skipped, stage2 resumes at step 2, stage3 runs
    const r2 = await runPipeline(cfg, { progress: 'silent', handleSignals: false, logger: quiet });
    expect(r2.completed).toBe(true);
    expect(r2.stages.map((s) => [s.name, s.status, s.start, s.globalStep])).toEqual([
      ['image', 'skipped', 'already-done', 3],
      ['stage1', 'skipped', 'already-done', 3],
      ['stage2', 'done', 'resumed', 3],
      ['stage3', 'done', 'previous-stage', 3],
    ]);
    expect(r2.stages[2]!.result!.startGlobalStep).toBe(2);
    expect(r2.stages[2]!.result!.losses).toHaveLength(1);
    expect(readFileSync(path.join(r1.stages[1]!.dir, 'log.jsonl'), 'utf8')).toBe(stage1Log);
    const s3 = await loadCheckpoint(r2.stages[3]!.finalCheckpoint!);
    expect(s3.optimizer!.state.step).toBe(12); // 4 stages x 3 steps of one continuous optimizer
    disposeCheckpoint(s3);
    // each stage trained with its own bucket table
    const buckets = (dir: string) => new Set(readJsonl(path.join(dir, 'log.jsonl')).filter((e) => e.event === 'train').map((e) => String(e.bucket).split('/').slice(0, 2).join('/')));
    expect([...buckets(r2.stages[0]!.dir)].every((b) => b.endsWith('/1'))).toBe(true); // image stage: T = 1 only
    expect(existsSync(path.join(o, 'pipeline.json'))).toBe(true);

    // third run: nothing left to do
    const r3 = await runPipeline(cfg, { progress: 'silent', handleSignals: false, logger: quiet });
    expect(r3.stages.every((s) => s.status === 'skipped')).toBe(true);
  });

  it('a stage trains what the previous stage kept frozen (fresh moments for those, the rest carried on)', async () => {
    const o = tmpDir('pipeline-freeze');
    dirs.push(o);
    const base = tinyPipeline(o);
    const cfg: PipelineConfigInput = {
      ...base,
      stages: [
        { ...base.stages[0]!, overrides: [...base.stages[0]!.overrides!, 'model.freeze=["attn_temp.proj"]'] },
        { ...base.stages[1]!, overrides: [...base.stages[1]!.overrides!, 'maskRatios=null'] },
      ],
    };
    const r = await runPipeline(cfg, { progress: 'silent', handleSignals: false, logger: quiet });
    expect(r.completed).toBe(true);
    const img = await loadCheckpoint(r.stages[0]!.finalCheckpoint!);
    const key = 'blocks.0.attn_temp.proj.weight';
    expect(img.optimizer!.state.params).not.toContain(key);
    expect(Array.from(img.model[key]!.dataSync()).every((v) => v === 0)).toBe(true); // zero-initialised, never trained
    const vid = await loadCheckpoint(r.stages[1]!.finalCheckpoint!);
    expect(vid.optimizer!.state.params).toContain(key);
    expect(vid.optimizer!.state.paramSteps[key]).toBe(3);
    expect(vid.optimizer!.state.paramSteps['blocks.0.attn.proj.weight']).toBe(6);
    expect(Array.from(vid.model[key]!.dataSync()).some((v) => v !== 0)).toBe(true);
    disposeCheckpoint(img);
    disposeCheckpoint(vid);
  });
});
